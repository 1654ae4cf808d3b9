package jsonata

func defineDateFunctions() {
	def("millis", "<:n>", func(ev *evaluator, _ []any, _ any, _ int) (any, error) {
		return float64(ev.opts.Now.UnixMilli()), nil
	})
}

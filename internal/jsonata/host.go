package jsonata

import "context"

// Function is a function the host binds as a variable, e.g. the $partition, $hash or $uuid that
// Step Functions adds. Its arguments are checked against its signature (JSONata's notation,
// e.g. "<s-n?:s>") and arrive as JSON values; it should return a JSON value (or nil and an
// *Error for a JSONata error).
type Function struct {
	b *builtin
}

// NewFunction makes a host function for Evaluate's vars.
func NewFunction(name, signature string, fn func(ctx context.Context, args []any) (any, error)) (*Function, error) {
	b := &builtin{name: name}
	if signature != "" {
		text := signature
		if len(text) >= 2 && text[0] == '<' && text[len(text)-1] == '>' {
			text = text[1 : len(text)-1]
		}
		sig, err := parseSignature(text, 0)
		if err != nil {
			return nil, err
		}
		b.sig = sig
	}
	b.fn = func(ev *evaluator, args []any, _ any, _ int) (any, error) {
		in := make([]any, len(args))
		for i, a := range args {
			if isUndef(a) {
				in[i] = nil
				continue
			}
			in[i] = toJSON(a)
		}
		v, err := fn(ev.ctx, in)
		if err != nil {
			return nil, err
		}
		return v, nil
	}
	return &Function{b: b}, nil
}

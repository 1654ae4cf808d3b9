package demo

import (
	"fmt"
	"strings"
)

// Sample is one observation of the demo, a second apart.
type Sample struct {
	T                 float64 // seconds since the burst
	Backlog, Replicas int
	Processed         int
}

// ChartSVG draws backlog (left axis) and running replicas (right axis) over time.
func ChartSVG(title string, samples []Sample) string {
	const w, h, left, right, top, bottom = 720.0, 320.0, 56.0, 56.0, 40.0, 44.0
	pw, ph := w-left-right, h-top-bottom
	maxT, maxB, maxR := 1.0, 1, 1
	for _, s := range samples {
		maxT = max(maxT, s.T)
		maxB = max(maxB, s.Backlog)
		maxR = max(maxR, s.Replicas)
	}
	maxB = niceCeil(maxB)
	x := func(t float64) float64 { return left + t/maxT*pw }
	yb := func(v int) float64 { return top + ph - float64(v)/float64(maxB)*ph }
	yr := func(v int) float64 { return top + ph - float64(v)/float64(maxR)*ph }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="Helvetica, Arial, sans-serif" font-size="11">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%.0f" height="%.0f" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="14" font-weight="bold" fill="#18181b">%s</text>`+"\n", left, title)
	// Grid and axes.
	for i := 0; i <= 4; i++ {
		v := maxB * i / 4
		y := yb(v)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e4e4e7"/><text x="%.1f" y="%.1f" text-anchor="end" fill="#2563eb">%d</text>`+"\n", left, y, left+pw, y, left-6, y+4, v)
	}
	for r := 0; r <= maxR; r++ {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#16a34a">%d</text>`+"\n", left+pw+6, yr(r)+4, r)
	}
	step := niceStep(maxT)
	for t := 0.0; t <= maxT+0.001; t += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#52525b">%gs</text>`+"\n", x(t), top+ph+16, t)
	}
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#52525b"/>`+"\n", left, top+ph, left+pw, top+ph)
	// Backlog: a line; replicas: a step line.
	var backlog, replicas []string
	for i, s := range samples {
		backlog = append(backlog, fmt.Sprintf("%.1f,%.1f", x(s.T), yb(s.Backlog)))
		if i > 0 {
			replicas = append(replicas, fmt.Sprintf("%.1f,%.1f", x(s.T), yr(samples[i-1].Replicas)))
		}
		replicas = append(replicas, fmt.Sprintf("%.1f,%.1f", x(s.T), yr(s.Replicas)))
	}
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#2563eb" stroke-width="2"/>`+"\n", strings.Join(backlog, " "))
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#16a34a" stroke-width="2"/>`+"\n", strings.Join(replicas, " "))
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="#2563eb">■ backlog (visible + in flight)</text><text x="%.0f" y="%.0f" fill="#16a34a">■ replicas running</text>`+"\n",
		left, h-10, left+220, h-10)
	b.WriteString("</svg>\n")
	return b.String()
}

func niceCeil(v int) int {
	for _, step := range []int{5, 10, 20, 25, 50, 100, 200, 250, 500, 1000} {
		if v <= step*4 {
			return (v + step - 1) / step * step
		}
	}
	return v
}

func niceStep(maxT float64) float64 {
	for _, s := range []float64{5, 10, 15, 30, 60, 120} {
		if maxT/s <= 10 {
			return s
		}
	}
	return 300
}

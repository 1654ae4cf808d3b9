package graph

import (
	"fmt"
	"html"
	"strings"
)

// Layout constants, in SVG user units (pixels).
const (
	charWidth  = 7.0
	nodeHeight = 32.0
	hGap       = 24.0
	vGap       = 44.0
	pad        = 14.0
	header     = 22.0
	circle     = 28.0
	margin     = 16.0
)

type box struct {
	w, h  float64
	layer int
	x, y  float64 // top-left, relative to the graph's origin
	inner []*layout
}

type layout struct {
	g      *Graph
	boxes  map[string]*box
	w, h   float64
	back   map[int]bool // indexes of edges drawn as back edges
	layers [][]*Node
}

func textWidth(s string) float64 {
	w := 0
	for _, line := range strings.Split(s, "\n") {
		w = max(w, len([]rune(line)))
	}
	return float64(w) * charWidth
}

func measure(g *Graph) *layout {
	l := &layout{g: g, boxes: map[string]*box{}, back: map[int]bool{}}
	for _, n := range g.Nodes {
		b := &box{}
		switch {
		case n.Kind == "Start" || n.Kind == "End":
			b.w, b.h = circle, circle
		case len(n.Inner) > 0:
			for i, inner := range n.Inner {
				il := measure(inner)
				b.inner = append(b.inner, il)
				if i > 0 {
					b.w += hGap
				}
				b.w += il.w
				b.h = max(b.h, il.h)
			}
			b.w = max(b.w+2*pad, textWidth(n.header())+2*pad)
			b.h += header + 2*pad
		default:
			b.w = max(textWidth(n.Label), textWidth(n.detail())) + 24
			b.h = nodeHeight
			if n.detail() != "" {
				b.h += 14
			}
		}
		l.boxes[n.ID] = b
	}
	l.assignLayers()
	l.place()
	return l
}

// assignLayers puts each node one layer below the deepest of its forward predecessors; edges that
// close a cycle (found by a depth-first walk from the start) are drawn as back edges.
func (l *layout) assignLayers() {
	out := map[string][]int{}
	for i, e := range l.g.Edges {
		out[e.From] = append(out[e.From], i)
	}
	state := map[string]int{} // 1 on the stack, 2 done
	var walk func(id string)
	walk = func(id string) {
		state[id] = 1
		for _, i := range out[id] {
			to := l.g.Edges[i].To
			switch state[to] {
			case 1:
				l.back[i] = true
			case 0:
				walk(to)
			}
		}
		state[id] = 2
	}
	if len(l.g.Nodes) > 0 {
		walk(l.g.Nodes[0].ID)
	}
	// Longest path over forward edges, in topological order (Kahn).
	indeg := map[string]int{}
	for i, e := range l.g.Edges {
		if !l.back[i] {
			indeg[e.To]++
		}
	}
	var ready []string
	for _, n := range l.g.Nodes {
		if indeg[n.ID] == 0 {
			ready = append(ready, n.ID)
		}
	}
	for len(ready) > 0 {
		id := ready[0]
		ready = ready[1:]
		for _, i := range out[id] {
			if l.back[i] {
				continue
			}
			to := l.g.Edges[i].To
			if b := l.boxes[to]; b != nil {
				b.layer = max(b.layer, l.boxes[id].layer+1)
			}
			if indeg[to]--; indeg[to] == 0 {
				ready = append(ready, to)
			}
		}
	}
	// The end marker goes below everything else.
	deepest := 0
	for _, n := range l.g.Nodes {
		if n.Kind != "End" {
			deepest = max(deepest, l.boxes[n.ID].layer)
		}
	}
	for _, n := range l.g.Nodes {
		if n.Kind == "End" {
			l.boxes[n.ID].layer = deepest + 1
		}
	}
	for _, n := range l.g.Nodes {
		b := l.boxes[n.ID]
		for len(l.layers) <= b.layer {
			l.layers = append(l.layers, nil)
		}
		l.layers[b.layer] = append(l.layers[b.layer], n)
	}
}

// slot is the width a node takes in its layer: its box, or the widest label of the edges into it
// (drawn near the node), so that labels of neighbouring nodes do not overlap.
func (l *layout) slot(id string) float64 {
	w := l.boxes[id].w
	for i, e := range l.g.Edges {
		if e.To == id && e.Label != "" && !l.back[i] {
			w = max(w, labelWidth(e.Label)+8)
		}
	}
	return w
}

func labelWidth(label string) float64 { return textWidth(shorten(label)) * 0.85 }

func shorten(label string) string {
	if len([]rune(label)) > 40 {
		return string([]rune(label)[:39]) + "…"
	}
	return label
}

func (l *layout) place() {
	widths := make([]float64, len(l.layers))
	for i, layer := range l.layers {
		for j, n := range layer {
			if j > 0 {
				widths[i] += hGap
			}
			widths[i] += l.slot(n.ID)
		}
		l.w = max(l.w, widths[i])
	}
	if len(l.back) > 0 {
		l.w += 2 * hGap // room on the right for back edges
	}
	y := 0.0
	for i, layer := range l.layers {
		tallest := 0.0
		for _, n := range layer {
			tallest = max(tallest, l.boxes[n.ID].h)
		}
		x := (l.w - widths[i]) / 2
		if len(l.back) > 0 {
			x = (l.w - 2*hGap - widths[i]) / 2
		}
		for _, n := range layer {
			b, slot := l.boxes[n.ID], l.slot(n.ID)
			b.x, b.y = x+(slot-b.w)/2, y+(tallest-b.h)/2
			x += slot + hGap
		}
		y += tallest + vGap
	}
	l.h = max(y-vGap, 0)
}

// SVG renders the graph as a standalone SVG document.
func SVG(g *Graph) string {
	l := measure(g)
	legend := 0.0
	if hasStatus(g) {
		legend = 28
	}
	title := 24.0
	w, h := l.w+2*margin, l.h+2*margin+title+legend
	w = max(w, textWidth(g.Title)*1.2+2*margin)
	if legend > 0 {
		w = max(w, legendWidth()+2*margin)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n", w, h, w, h)
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#52525b"/></marker></defs>` + "\n")
	fmt.Fprintf(&b, `<rect width="%.0f" height="%.0f" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="14" font-weight="bold" fill="#18181b">%s</text>`+"\n", margin, margin+12, xmlText(g.Title))
	l.draw(&b, margin, margin+title)
	if legend > 0 {
		x := margin
		y := h - margin - 10
		for _, s := range legendOrder {
			c := colors[s]
			name := legendName(s)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="12" height="12" rx="3" fill="%s" stroke="%s"/><text x="%.1f" y="%.1f" fill="#3f3f46">%s</text>`+"\n", x, y-10, c[0], c[1], x+16, y, name)
			x += 16 + textWidth(name) + 14
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

var legendOrder = []Status{Succeeded, Running, Caught, Failed, NotRun}

func legendName(s Status) string {
	if s == NotRun {
		return "not run"
	}
	return string(s)
}

func legendWidth() float64 {
	w := 0.0
	for _, s := range legendOrder {
		w += 16 + textWidth(legendName(s)) + 14
	}
	return w
}

func hasStatus(g *Graph) bool {
	for _, n := range g.Nodes {
		if n.Status != NotRun {
			return true
		}
		for _, in := range n.Inner {
			if hasStatus(in) {
				return true
			}
		}
	}
	return false
}

func (l *layout) draw(b *strings.Builder, ox, oy float64) {
	for i, e := range l.g.Edges {
		from, to := l.boxes[e.From], l.boxes[e.To]
		if from == nil || to == nil {
			continue
		}
		var path string
		var lx, ly float64
		if l.back[i] {
			// Out of the source's right side, up the right margin, into the target's right side.
			x1, y1 := ox+from.x+from.w, oy+from.y+from.h/2
			x2, y2 := ox+to.x+to.w, oy+to.y+to.h/2
			xr := ox + l.w - hGap/2
			path = fmt.Sprintf("M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f", x1, y1, xr, y1, xr, y2, x2, y2)
			lx, ly = xr-4, (y1+y2)/2
		} else {
			x1, y1 := ox+from.x+from.w/2, oy+from.y+from.h
			x2, y2 := ox+to.x+to.w/2, oy+to.y
			dy := (y2 - y1) / 2
			path = fmt.Sprintf("M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f", x1, y1, x1, y1+dy, x2, y2-dy, x2, y2)
			// The label sits at 70% of the curve, near its target, where edges fanning out of one
			// state (Choice rules, Catch) have moved apart.
			const t = 0.7
			lx = (1-t)*(1-t)*(1-t)*x1 + 3*(1-t)*(1-t)*t*x1 + 3*(1-t)*t*t*x2 + t*t*t*x2
			ly = (1-t)*(1-t)*(1-t)*y1 + 3*(1-t)*(1-t)*t*(y1+dy) + 3*(1-t)*t*t*(y2-dy) + t*t*t*y2 + 4
		}
		fmt.Fprintf(b, `<path d="%s" fill="none" stroke="#52525b" stroke-width="1.2" marker-end="url(#arrow)"/>`+"\n", path)
		if e.Label != "" {
			label := shorten(e.Label)
			tw := labelWidth(e.Label)
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="14" rx="3" fill="white" opacity="0.9"/><text x="%.1f" y="%.1f" font-size="10" text-anchor="middle" fill="#3f3f46">%s</text>`+"\n",
				lx-tw/2-3, ly-11, tw+6, lx, ly, xmlText(label))
		}
	}
	for _, n := range l.g.Nodes {
		bx := l.boxes[n.ID]
		x, y := ox+bx.x, oy+bx.y
		c := colors[n.Status]
		switch {
		case n.Kind == "Start" || n.Kind == "End":
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="%.1f" fill="#27272a"/><text x="%.1f" y="%.1f" font-size="8" text-anchor="middle" fill="white">%s</text>`+"\n",
				x+circle/2, y+circle/2, circle/2, x+circle/2, y+circle/2+3, xmlText(n.Label))
		case len(bx.inner) > 0:
			fmt.Fprintf(b, `<g><title>%s</title><rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="8" fill="%s" fill-opacity="0.35" stroke="%s" stroke-dasharray="5,3"/>`+"\n",
				xmlText(n.ID+" ("+n.Kind+")"), x, y, bx.w, bx.h, c[0], c[1])
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-weight="bold" fill="#18181b">%s</text></g>`+"\n", x+pad, y+pad+8, xmlText(n.header()))
			ix := x + pad
			for _, il := range bx.inner {
				fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="10" fill="#52525b">%s</text>`+"\n", ix, y+header+pad+6, xmlText(il.g.Title))
				il.draw(b, ix, y+header+pad+10)
				ix += il.w + hGap
			}
		default:
			width := "1.5"
			if n.Redrive > 0 {
				width = "3" // run by the latest redrive
			}
			fmt.Fprintf(b, `<g><title>%s</title><rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="6" fill="%s" stroke="%s" stroke-width="%s"/>`+"\n",
				xmlText(n.ID+" ("+n.Kind+")"), x, y, bx.w, bx.h, c[0], c[1], width)
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#18181b">%s</text>`, x+bx.w/2, y+20, xmlText(n.Label))
			if d := n.detail(); d != "" {
				fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10" fill="#52525b">%s</text>`, x+bx.w/2, y+34, xmlText(d))
			}
			b.WriteString("</g>\n")
		}
	}
}

// xmlText escapes s for XML text and attribute values. State names, comments and titles come from
// a tenant's definition and may hold characters XML 1.0 forbids (most C0 controls, U+FFFE, U+FFFF,
// bytes that are not UTF-8): a single one makes the whole document unreadable to a browser or XML
// parser, so each becomes U+FFFD, the replacement character, which shows where it was.
func xmlText(s string) string {
	return html.EscapeString(strings.Map(func(r rune) rune {
		if xmlAllowed(r) {
			return r
		}
		return '\uFFFD'
	}, s))
}

// xmlAllowed is XML 1.0's Char production. Invalid UTF-8 arrives here as utf8.RuneError (U+FFFD),
// which is allowed and is the replacement wanted.
func xmlAllowed(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r':
		return true
	case r < 0x20:
		return false
	case r <= 0xD7FF:
		return true
	case r < 0xE000:
		return false
	case r <= 0xFFFD:
		return true
	default:
		return r >= 0x10000 && r <= 0x10FFFF
	}
}

package graph

import (
	"fmt"
	"strings"
)

// Colors of each status (fill, stroke), shared by every format.
var colors = map[Status][2]string{
	NotRun:    {"#f4f4f5", "#a1a1aa"},
	Running:   {"#dbeafe", "#2563eb"},
	Succeeded: {"#dcfce7", "#16a34a"},
	Failed:    {"#fee2e2", "#dc2626"},
	Caught:    {"#ffedd5", "#ea580c"},
}

func nodeText(n *Node) string {
	if n.detail() == "" || n.Kind == "Start" || n.Kind == "End" {
		return n.Label
	}
	return n.Label + "\n" + n.detail()
}

// detail is a state's detail line, with the redrive that ran it.
func (n *Node) detail() string {
	if n.Redrive == 0 {
		return n.Detail
	}
	r := fmt.Sprintf("redrive %d", n.Redrive)
	if n.Detail == "" {
		return r
	}
	return n.Detail + " · " + r
}

// header is a Parallel or Map state's title, with the redrive that ran it.
func (n *Node) header() string {
	h := n.Label + " (" + n.Kind + ")"
	if n.Redrive > 0 {
		h += fmt.Sprintf(" · redrive %d", n.Redrive)
	}
	return h
}

// DOT renders the graph for Graphviz.
func DOT(g *Graph) string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", quote(g.Title))
	b.WriteString("  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=9];\n")
	dotBody(&b, g, "  ")
	b.WriteString("}\n")
	return b.String()
}

func dotBody(b *strings.Builder, g *Graph, indent string) {
	for _, n := range g.Nodes {
		c := colors[n.Status]
		switch {
		case n.Kind == "Start" || n.Kind == "End":
			fmt.Fprintf(b, "%s%s [label=%s, shape=circle, fixedsize=true, width=0.5, fillcolor=\"#27272a\", fontcolor=white, fontsize=8];\n", indent, quote(n.ID), quote(n.Label))
		case len(n.Inner) > 0:
			// The state is the cluster's label; edges to it go to its first inner start.
			fmt.Fprintf(b, "%s%s [label=%s, shape=box, fillcolor=%s, color=%s];\n", indent, quote(n.ID), quote(strings.TrimSuffix(n.header()+"\n"+n.Detail, "\n")), quote(c[0]), quote(c[1]))
			for i, inner := range n.Inner {
				fmt.Fprintf(b, "%ssubgraph %s {\n%s  label=%s; style=\"rounded,dashed\"; color=%s;\n", indent, quote(fmt.Sprintf("cluster_%s_%d", n.ID, i)), indent, quote(n.Label+": "+inner.Title), quote(c[1]))
				dotBody(b, inner, indent+"  ")
				fmt.Fprintf(b, "%s}\n", indent)
				fmt.Fprintf(b, "%s%s -> %s [style=dotted, arrowhead=none];\n", indent, quote(n.ID), quote(inner.Nodes[0].ID))
			}
		default:
			fmt.Fprintf(b, "%s%s [label=%s, fillcolor=%s, color=%s];\n", indent, quote(n.ID), quote(nodeText(n)), quote(c[0]), quote(c[1]))
		}
	}
	for _, e := range g.Edges {
		if e.Label != "" {
			fmt.Fprintf(b, "%s%s -> %s [label=%s];\n", indent, quote(e.From), quote(e.To), quote(e.Label))
		} else {
			fmt.Fprintf(b, "%s%s -> %s;\n", indent, quote(e.From), quote(e.To))
		}
	}
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// Mermaid renders the graph as a Mermaid flowchart.
func Mermaid(g *Graph) string {
	var b strings.Builder
	ids := map[string]string{}
	id := func(s string) string {
		if v, ok := ids[s]; ok {
			return v
		}
		ids[s] = fmt.Sprintf("n%d", len(ids))
		return ids[s]
	}
	b.WriteString("flowchart TD\n")
	mermaidBody(&b, g, "  ", id)
	for s, c := range colors {
		name := string(s)
		if s == NotRun {
			name = "notrun"
		}
		fmt.Fprintf(&b, "  classDef %s fill:%s,stroke:%s\n", name, c[0], c[1])
	}
	return b.String()
}

func mermaidBody(b *strings.Builder, g *Graph, indent string, id func(string) string) {
	for _, n := range g.Nodes {
		class := string(n.Status)
		if n.Status == NotRun {
			class = "notrun"
		}
		label := mermaidText(nodeText(n))
		switch {
		case n.Kind == "Start" || n.Kind == "End":
			fmt.Fprintf(b, "%s%s((%s))\n", indent, id(n.ID), label)
		case len(n.Inner) > 0:
			fmt.Fprintf(b, "%ssubgraph %s [%s]\n", indent, id(n.ID), mermaidText(n.header()))
			for i, inner := range n.Inner {
				fmt.Fprintf(b, "%s  subgraph %s [%s]\n", indent, id(fmt.Sprintf("%s#%d", n.ID, i)), mermaidText(inner.Title))
				mermaidBody(b, inner, indent+"    ", id)
				fmt.Fprintf(b, "%s  end\n", indent)
			}
			fmt.Fprintf(b, "%send\n%sclass %s %s\n", indent, indent, id(n.ID), class)
			continue
		default:
			fmt.Fprintf(b, "%s%s(%s)\n", indent, id(n.ID), label)
		}
		fmt.Fprintf(b, "%sclass %s %s\n", indent, id(n.ID), class)
	}
	for _, e := range g.Edges {
		if e.Label != "" {
			fmt.Fprintf(b, "%s%s -->|%s| %s\n", indent, id(e.From), mermaidText(e.Label), id(e.To))
		} else {
			fmt.Fprintf(b, "%s%s --> %s\n", indent, id(e.From), id(e.To))
		}
	}
}

func mermaidText(s string) string {
	return `"` + strings.NewReplacer(`"`, "#quot;", "\n", "<br/>", "|", "#124;").Replace(s) + `"`
}

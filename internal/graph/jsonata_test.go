package graph

import (
	"strings"
	"testing"

	"github.com/millrace-io/millrace/internal/asl"
)

// TestJSONataConditionsAndAssignsLabelEdges: a JSONata Choice rule's edge shows its Condition,
// and every transition that assigns variables names them.
func TestJSONataConditionsAndAssignsLabelEdges(t *testing.T) {
	m, errs := asl.Parse([]byte(`{"QueryLanguage":"JSONata","StartAt":"Price","States":{
		"Price":{"Type":"Task","Resource":"millrace:http","Assign":{"price":"{% $states.result.price %}","currency":"EUR"},"Next":"Big?",
			"Catch":[{"ErrorEquals":["States.ALL"],"Assign":{"failed":true},"Next":"Done"}]},
		"Big?":{"Type":"Choice","Choices":[{"Condition":"{% $price >   100 %}","Assign":{"tier":"gold"},"Next":"Wait"},{"Condition":true,"Next":"Done"}],
			"Default":"Done","Assign":{"tier":"none"}},
		"Wait":{"Type":"Wait","Seconds":"{% $price %}","Next":"Done"},
		"Done":{"Type":"Succeed"}}}`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	g := FromMachine("jsonata", m, nil)
	var edges []string
	for _, e := range g.Edges {
		edges = append(edges, e.From+">"+e.To+":"+e.Label)
	}
	all := strings.Join(edges, "|")
	for _, e := range []string{"Price>Big?:assign currency, price", "Price>Done:Catch States.ALL; assign failed",
		"Big?>Wait:$price > 100; assign tier", "Big?>Done:true", "Big?>Done:Default; assign tier"} {
		if !strings.Contains(all, e) {
			t.Errorf("no edge %s in %v", e, edges)
		}
	}
	for _, n := range g.Nodes {
		if n.ID == "Wait" && n.Detail != "$price s" {
			t.Errorf("Wait detail %q", n.Detail)
		}
	}
	for _, out := range []string{DOT(g), Mermaid(g), SVG(g)} {
		if !strings.Contains(out, "assign tier") {
			t.Errorf("a drawing lacks the Assign label:\n%s", out)
		}
	}
}

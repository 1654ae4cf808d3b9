package asl

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
)

// ChoiceRule is one rule of a Choice state (top-level rules carry Next).
type ChoiceRule struct {
	Variable   *Path
	Op         string // e.g. StringEquals, NumericLessThanPath, IsPresent, And
	Value      any    // the literal operand
	ValuePath  *Path  // the operand of a ...Path operator
	Rules      []*ChoiceRule
	Next       string
	matchRegex *regexp.Regexp
	// Condition (JSONata rules: true, false or an expression), and the Output and Assign a
	// top-level rule applies when it is chosen.
	Condition *Value
	Output    *Value
	Assign    *Assign
}

var comparisonOps = []string{
	"StringEquals", "StringLessThan", "StringGreaterThan", "StringLessThanEquals", "StringGreaterThanEquals", "StringMatches",
	"NumericEquals", "NumericLessThan", "NumericGreaterThan", "NumericLessThanEquals", "NumericGreaterThanEquals",
	"BooleanEquals",
	"TimestampEquals", "TimestampLessThan", "TimestampGreaterThan", "TimestampLessThanEquals", "TimestampGreaterThanEquals",
	"IsNull", "IsPresent", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp",
}

func isComparison(op string) bool {
	for _, c := range comparisonOps {
		if op == c || (op == c+"Path" && c != "StringMatches" && !strings.HasPrefix(c, "Is")) {
			return true
		}
	}
	return false
}

// parseChoiceRule reads a rule from its JSON object, reporting errors with paths under at.
func parseChoiceRule(raw map[string]any, at string, top bool) (*ChoiceRule, []FieldError) {
	var errs []FieldError
	r := &ChoiceRule{}
	for k, v := range raw {
		switch {
		case k == "Next":
			s, ok := v.(string)
			if !top || !ok {
				errs = append(errs, FieldError{at + ".Next", "Next is only allowed, as a string, on a top-level choice rule"})
			}
			r.Next = s
		case k == "Comment":
		case k == "Variable":
			s, _ := v.(string)
			p, err := ParsePath(s)
			if err != nil {
				errs = append(errs, FieldError{at + ".Variable", err.Error()})
			} else {
				r.Variable = &p
			}
		case k == "And" || k == "Or":
			r.Op = k
			list, ok := v.([]any)
			if !ok || len(list) == 0 {
				errs = append(errs, FieldError{at + "." + k, k + " must be a non-empty array of rules"})
				continue
			}
			for i, item := range list {
				obj, ok := item.(map[string]any)
				if !ok {
					errs = append(errs, FieldError{fmt.Sprintf("%s.%s[%d]", at, k, i), "must be a choice rule object"})
					continue
				}
				sub, e := parseChoiceRule(obj, fmt.Sprintf("%s.%s[%d]", at, k, i), false)
				errs = append(errs, e...)
				r.Rules = append(r.Rules, sub)
			}
		case k == "Not":
			r.Op = k
			obj, ok := v.(map[string]any)
			if !ok {
				errs = append(errs, FieldError{at + ".Not", "Not must be a choice rule object"})
				continue
			}
			sub, e := parseChoiceRule(obj, at+".Not", false)
			errs = append(errs, e...)
			r.Rules = []*ChoiceRule{sub}
		case isComparison(k):
			if r.Op != "" {
				errs = append(errs, FieldError{at + "." + k, fmt.Sprintf("a rule has one operator; %s and %s given", r.Op, k)})
			}
			r.Op = k
			if strings.HasSuffix(k, "Path") {
				s, _ := v.(string)
				p, err := ParsePath(s)
				if err != nil {
					errs = append(errs, FieldError{at + "." + k, err.Error()})
				} else {
					r.ValuePath = &p
				}
				continue
			}
			r.Value = v
			if e := checkOperand(k, v); e != "" {
				errs = append(errs, FieldError{at + "." + k, e})
			}
			if k == "StringMatches" {
				if s, ok := v.(string); ok {
					r.matchRegex = wildcard(s)
				}
			}
		default:
			errs = append(errs, FieldError{at + "." + k, fmt.Sprintf("unknown field %q in a choice rule", k)})
		}
	}
	switch {
	case r.Op == "":
		errs = append(errs, FieldError{at, "a choice rule needs a comparison operator, And, Or or Not"})
	case r.Op != "And" && r.Op != "Or" && r.Op != "Not" && r.Variable == nil:
		errs = append(errs, FieldError{at + ".Variable", "a comparison needs a Variable"})
	}
	if top && r.Next == "" {
		errs = append(errs, FieldError{at + ".Next", "a top-level choice rule needs Next"})
	}
	return r, errs
}

func checkOperand(op string, v any) string {
	switch {
	case strings.HasPrefix(op, "String"):
		if _, ok := v.(string); !ok {
			return op + " needs a string"
		}
	case strings.HasPrefix(op, "Numeric"):
		if _, ok := v.(float64); !ok {
			return op + " needs a number"
		}
	case strings.HasPrefix(op, "Boolean"), strings.HasPrefix(op, "Is"):
		if _, ok := v.(bool); !ok {
			return op + " needs a boolean"
		}
	case strings.HasPrefix(op, "Timestamp"):
		s, ok := v.(string)
		if _, err := parseTimestamp(s); !ok || err != nil {
			return op + " needs an RFC3339 timestamp"
		}
	}
	return ""
}

// wildcard compiles a StringMatches pattern: * matches any run of characters, \* and \\ escape.
func wildcard(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch {
		case p[i] == '\\' && i+1 < len(p):
			b.WriteString(regexp.QuoteMeta(string(p[i+1])))
			i++
		case p[i] == '*':
			b.WriteString("(?s:.*)")
		default:
			b.WriteString(regexp.QuoteMeta(string(p[i])))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func parseTimestamp(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// Matches evaluates the rule against the input. A comparison whose Variable is missing is false
// (except IsPresent, which is exactly that test).
func (r *ChoiceRule) Matches(input, context any) (bool, error) {
	switch r.Op {
	case "And":
		for _, sub := range r.Rules {
			ok, err := sub.Matches(input, context)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case "Or":
		for _, sub := range r.Rules {
			ok, err := sub.Matches(input, context)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case "Not":
		ok, err := r.Rules[0].Matches(input, context)
		return !ok, err
	}
	present := r.Variable.Present(input, context)
	if r.Op == "IsPresent" {
		return present == r.Value.(bool), nil
	}
	if !present {
		return false, nil
	}
	v, err := r.Variable.Get(input, context)
	if err != nil {
		return false, err
	}
	op, operand := r.Op, r.Value
	if r.ValuePath != nil {
		op = strings.TrimSuffix(op, "Path")
		operand, err = r.ValuePath.Get(input, context)
		if err != nil {
			return false, err
		}
	}
	switch op {
	case "IsNull":
		return (v == nil) == operand.(bool), nil
	case "IsNumeric":
		_, ok := v.(float64)
		return ok == operand.(bool), nil
	case "IsString":
		_, ok := v.(string)
		return ok == operand.(bool), nil
	case "IsBoolean":
		_, ok := v.(bool)
		return ok == operand.(bool), nil
	case "IsTimestamp":
		s, ok := v.(string)
		if ok {
			_, err := parseTimestamp(s)
			ok = err == nil
		}
		return ok == operand.(bool), nil
	case "StringMatches":
		s, ok := v.(string)
		return ok && r.matchRegex.MatchString(s), nil
	case "BooleanEquals":
		a, ok1 := v.(bool)
		b, ok2 := operand.(bool)
		return ok1 && ok2 && a == b, nil
	}
	switch {
	case strings.HasPrefix(op, "String"):
		a, ok1 := v.(string)
		b, ok2 := operand.(string)
		return ok1 && ok2 && compare(strings.Compare(a, b), strings.TrimPrefix(op, "String")), nil
	case strings.HasPrefix(op, "Numeric"):
		a, ok1 := v.(float64)
		b, ok2 := operand.(float64)
		if !ok1 || !ok2 || math.IsNaN(a) || math.IsNaN(b) {
			return false, nil
		}
		c := 0
		if a < b {
			c = -1
		} else if a > b {
			c = 1
		}
		return compare(c, strings.TrimPrefix(op, "Numeric")), nil
	case strings.HasPrefix(op, "Timestamp"):
		as, ok1 := v.(string)
		bs, ok2 := operand.(string)
		if !ok1 || !ok2 {
			return false, nil
		}
		a, err1 := parseTimestamp(as)
		b, err2 := parseTimestamp(bs)
		if err1 != nil || err2 != nil {
			return false, nil
		}
		return compare(a.Compare(b), strings.TrimPrefix(op, "Timestamp")), nil
	}
	return false, fmt.Errorf("unknown operator %s", r.Op)
}

func compare(c int, rel string) bool {
	switch rel {
	case "Equals":
		return c == 0
	case "LessThan":
		return c < 0
	case "GreaterThan":
		return c > 0
	case "LessThanEquals":
		return c <= 0
	case "GreaterThanEquals":
		return c >= 0
	}
	return false
}

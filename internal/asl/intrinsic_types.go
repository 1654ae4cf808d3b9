package asl

import (
	"fmt"
	"math"
	"unicode/utf8"
)

// The argument types of the intrinsic functions, as Step Functions documents them, so that a
// constant argument of the wrong type (States.MathAdd(1, '-1')) is refused when the definition is
// validated rather than when a run reaches it. Arguments taken from a path are checked when the
// function runs.

// argKind is what an argument must be.
type argKind int

const (
	anyArg     argKind = iota
	stringArg          // a string
	intArg             // an integer (a number without a fraction)
	boolArg            // true or false
	arrayArg           // an array (never a literal: literals are strings, numbers, booleans, null)
	objectArg          // an object (never a literal)
	scalarArg          // a string, number, boolean or null (States.Format's values)
	notNullArg         // anything but null
)

func (k argKind) String() string {
	return [...]string{"any value", "a string", "an integer", "a boolean", "an array", "an object", "a string, number, boolean or null", "a value other than null"}[k]
}

// intrinsicArgs are the argument kinds of each function; the last one repeats for functions that
// take any number of arguments.
var intrinsicArgs = map[string][]argKind{
	"States.Format":         {stringArg, scalarArg},
	"States.StringToJson":   {stringArg},
	"States.JsonToString":   {anyArg},
	"States.Array":          {anyArg},
	"States.ArrayPartition": {arrayArg, intArg},
	"States.ArrayContains":  {arrayArg, anyArg},
	"States.ArrayRange":     {intArg, intArg, intArg},
	"States.ArrayGetItem":   {arrayArg, intArg},
	"States.ArrayLength":    {arrayArg},
	"States.ArrayUnique":    {arrayArg},
	"States.Base64Encode":   {stringArg},
	"States.Base64Decode":   {stringArg},
	"States.Hash":           {notNullArg, stringArg},
	"States.JsonMerge":      {objectArg, objectArg, boolArg},
	"States.MathRandom":     {intArg, intArg, intArg},
	"States.MathAdd":        {intArg, intArg},
	"States.StringSplit":    {stringArg, stringArg},
	"States.UUID":           {},
}

// intrinsicResults are the kinds of value the functions return (anyArg: unknown until run).
var intrinsicResults = map[string]argKind{
	"States.Format": stringArg, "States.JsonToString": stringArg, "States.Array": arrayArg,
	"States.ArrayPartition": arrayArg, "States.ArrayContains": boolArg, "States.ArrayRange": arrayArg,
	"States.ArrayLength": intArg, "States.ArrayUnique": arrayArg, "States.Base64Encode": stringArg,
	"States.Base64Decode": stringArg, "States.Hash": stringArg, "States.JsonMerge": objectArg,
	"States.MathRandom": intArg, "States.MathAdd": intArg, "States.StringSplit": arrayArg,
	"States.UUID": stringArg,
}

// MaxIntrinsicInputChars is the longest string States.Base64Encode, States.Base64Decode and
// States.Hash take (Step Functions' limit); a longer one fails with States.IntrinsicFailure.
const MaxIntrinsicInputChars = 10000

// hashAlgorithms are those States.Hash and JSONata's $hash support (newHash).
var hashAlgorithms = []string{"MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512"}

// checkArgTypes refuses a call whose constant arguments (literals, or nested calls whose result
// kind is known) are not of the kinds the function takes, and the constant values Step Functions
// refuses (a hash algorithm it does not know, a deep JsonMerge, a string over the input limit).
func checkArgTypes(c *call) error {
	kinds := intrinsicArgs[c.name]
	for i, a := range c.args {
		if len(kinds) == 0 {
			break
		}
		want := kinds[min(i, len(kinds)-1)]
		var got argKind
		var lit any
		switch {
		case a.path != nil:
			continue
		case a.call != nil:
			got = intrinsicResults[a.call.name]
			if got == anyArg {
				continue
			}
		default:
			lit = a.literal
		}
		if a.call == nil {
			if !literalIs(lit, want) {
				return fmt.Errorf("%s: argument %d must be %s, got %s", c.name, i+1, want, describeLiteral(lit))
			}
		} else if !kindFits(got, want) {
			return fmt.Errorf("%s: argument %d must be %s, got the result of %s (%s)", c.name, i+1, want, a.call.name, got)
		}
		if s, ok := lit.(string); ok {
			if err := checkConstantString(c.name, i, s); err != nil {
				return err
			}
		}
		if c.name == "States.JsonMerge" && i == 2 && lit == true {
			return fmt.Errorf("States.JsonMerge: only a shallow merge (false) is supported, as in Step Functions")
		}
	}
	return nil
}

// checkConstantString checks a constant string argument against the function's own rules.
func checkConstantString(name string, i int, s string) error {
	switch {
	case name == "States.Hash" && i == 1:
		for _, h := range hashAlgorithms {
			if s == h {
				return nil
			}
		}
		return fmt.Errorf("States.Hash: unknown algorithm %q (MD5, SHA-1, SHA-256, SHA-384, SHA-512)", s)
	case (name == "States.Base64Encode" || name == "States.Base64Decode" || name == "States.Hash") && i == 0:
		if n := utf8.RuneCountInString(s); n > MaxIntrinsicInputChars {
			return fmt.Errorf("%s: the input is %d characters (at most %d)", name, n, MaxIntrinsicInputChars)
		}
	}
	return nil
}

// literalIs reports whether a literal argument (string, number, boolean or null) is of kind k.
func literalIs(v any, k argKind) bool {
	switch k {
	case anyArg:
		return true
	case stringArg:
		_, ok := v.(string)
		return ok
	case intArg:
		f, ok := v.(float64)
		return ok && f == math.Trunc(f) && !math.IsInf(f, 0)
	case boolArg:
		_, ok := v.(bool)
		return ok
	case arrayArg, objectArg:
		return false
	case scalarArg:
		return true
	case notNullArg:
		return v != nil
	}
	return true
}

// kindFits reports whether a value of kind got (a nested call's result) can be of kind want.
func kindFits(got, want argKind) bool {
	switch want {
	case anyArg:
		return true
	case scalarArg:
		return got != arrayArg && got != objectArg
	case notNullArg:
		return true
	}
	return got == want
}

func describeLiteral(v any) string {
	switch t := v.(type) {
	case string:
		return fmt.Sprintf("the string '%s'", t)
	case float64:
		return fmt.Sprintf("the number %v", t)
	case bool:
		return fmt.Sprintf("%v", t)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", v)
}

// intrinsicInputLimit is the runtime check of the 10,000-character limit.
func intrinsicInputLimit(name, s string) error {
	if n := utf8.RuneCountInString(s); n > MaxIntrinsicInputChars {
		return fail("%s: the input is %d characters (at most %d)", name, n, MaxIntrinsicInputChars)
	}
	return nil
}

package asl

import (
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Step Functions' newer Task and Map fields: TimeoutSecondsPath, HeartbeatSecondsPath and
// Credentials on Task states; MaxConcurrencyPath, ItemBatcher, the tolerated failure threshold,
// ProcessorConfig and Label on Map states. ItemReader and ResultWriter are refused until they are
// supported.

// ItemBatcher groups a Map state's items into batches: each iteration gets {"Items": [...]} and
// the fields of BatchInput.
type ItemBatcher struct {
	MaxItemsPerBatch          int
	MaxItemsPerBatchPath      *Path
	MaxInputBytesPerBatch     int
	MaxInputBytesPerBatchPath *Path
	BatchInput                *Template
}

// Tolerance is a Map state's tolerated failure threshold: how many (Count) or what percentage
// (Percentage) of its iterations may fail without failing the state.
type Tolerance struct {
	Count, Percentage         *float64
	CountPath, PercentagePath *Path
}

// Set reports whether the state tolerates failed iterations at all.
func (t Tolerance) Set() bool {
	return t.Count != nil || t.Percentage != nil || t.CountPath != nil || t.PercentagePath != nil
}

// Processor modes of a Map state's ItemProcessor.ProcessorConfig.
const (
	ModeInline      = "INLINE"
	ModeDistributed = "DISTRIBUTED"
)

// MaxLabelLength is the longest Map Label Step Functions accepts.
const MaxLabelLength = 40

func init() {
	// The newer fields are accepted by the states that have them (kept apart from stateFields'
	// definition, which other changes touch).
	stateFields["Task"] = append(stateFields["Task"], "TimeoutSecondsPath", "HeartbeatSecondsPath", "Credentials")
	stateFields["Map"] = append(stateFields["Map"], "MaxConcurrencyPath", "ItemBatcher",
		"ToleratedFailureCount", "ToleratedFailureCountPath", "ToleratedFailurePercentage", "ToleratedFailurePercentagePath",
		"ItemReader", "ResultWriter")
}

// newerFields parses the newer Task and Map fields of a state.
func (p *parser) newerFields(s *State, obj map[string]any, at string) {
	switch s.Type {
	case "Task":
		s.TimeoutSecondsPath = p.exclusivePath(obj, "TimeoutSeconds", at)
		s.HeartbeatSecondsPath = p.exclusivePath(obj, "HeartbeatSeconds", at)
		if v, ok := obj["Credentials"]; ok {
			s.Credentials = p.credentials(v, at+".Credentials")
		}
	case "Map":
		s.MaxConcurrencyPath = p.exclusivePath(obj, "MaxConcurrency", at)
		if v, ok := obj["ItemBatcher"]; ok {
			s.ItemBatcher = p.itemBatcher(v, at+".ItemBatcher")
		}
		s.Tolerance = p.tolerance(obj, at)
		for _, f := range []string{"ItemReader", "ResultWriter"} {
			if _, ok := obj[f]; ok {
				p.add(at+"."+f, "%s is not supported yet: a Map state's items come from its input (ItemsPath) and its results go to its output", f)
			}
		}
		if v, ok := obj["Label"]; ok {
			s.Label = p.label(v, at+".Label")
		}
		field := "ItemProcessor"
		proc, ok := obj[field].(map[string]any)
		if !ok {
			field = "Iterator"
			proc, _ = obj[field].(map[string]any)
		}
		if v, ok := proc["ProcessorConfig"]; ok {
			s.ProcessorMode, s.ExecutionType = p.processorConfig(v, at+"."+field+".ProcessorConfig")
		}
	case "Parallel":
		branches, _ := obj["Branches"].([]any)
		for i, b := range branches {
			if bo, ok := b.(map[string]any); ok {
				if _, ok := bo["ProcessorConfig"]; ok {
					p.add(fmt.Sprintf("%s.Branches[%d].ProcessorConfig", at, i), "ProcessorConfig belongs to a Map state's ItemProcessor, not to a Parallel branch")
				}
			}
		}
	}
}

// exclusivePath parses "<field>Path", which the state may have instead of <field>.
func (p *parser) exclusivePath(obj map[string]any, field, at string) *Path {
	pf := field + "Path"
	if _, ok := obj[pf]; !ok {
		return nil
	}
	if _, ok := obj[field]; ok {
		p.add(at, "%s and %s are exclusive", field, pf)
	}
	if _, ok := obj[pf].(string); !ok {
		p.add(at+"."+pf, "must be a path string")
		return nil
	}
	return p.path(obj, pf, at)
}

// credentials parses a Task's Credentials: an object with RoleArn (a string) or RoleArn.$ (a path
// or an intrinsic function), evaluated like Parameters when the task starts.
func (p *parser) credentials(v any, at string) *Template {
	o, ok := v.(map[string]any)
	if !ok {
		p.add(at, "must be a JSON object with RoleArn (or RoleArn.$)")
		return nil
	}
	_, plain := o["RoleArn"]
	_, dyn := o["RoleArn.$"]
	switch {
	case !plain && !dyn:
		p.add(at, "Credentials needs RoleArn (or RoleArn.$)")
	case plain:
		if _, ok := o["RoleArn"].(string); !ok {
			p.add(at+".RoleArn", "must be a string")
		}
	}
	for k := range o {
		if k != "RoleArn" && k != "RoleArn.$" {
			p.add(at+"."+k, "unknown field %q in Credentials (RoleArn, RoleArn.$)", k)
		}
	}
	t, errs := ParseTemplate(o)
	for _, e := range errs {
		p.add(at+e.Path, "%s", e.Message)
	}
	return &t
}

// itemBatcher parses a Map state's ItemBatcher.
func (p *parser) itemBatcher(v any, at string) *ItemBatcher {
	o, ok := v.(map[string]any)
	if !ok {
		p.add(at, "must be a JSON object")
		return nil
	}
	b := &ItemBatcher{}
	for k, fv := range o {
		switch k {
		case "MaxItemsPerBatch":
			b.MaxItemsPerBatch = p.positiveInt(fv, at+"."+k, MaxMapItemsPerRun)
		case "MaxInputBytesPerBatch":
			b.MaxInputBytesPerBatch = p.positiveInt(fv, at+"."+k, DefaultMaxPayloadBytes)
		case "MaxItemsPerBatchPath", "MaxInputBytesPerBatchPath":
			s, ok := fv.(string)
			path, err := ParsePath(s)
			if !ok || err != nil {
				p.add(at+"."+k, "must be a path")
				continue
			}
			if k == "MaxItemsPerBatchPath" {
				b.MaxItemsPerBatchPath = &path
			} else {
				b.MaxInputBytesPerBatchPath = &path
			}
		case "BatchInput":
			if _, ok := fv.(map[string]any); !ok {
				p.add(at+".BatchInput", "must be a JSON object (a payload template)")
				continue
			}
			t, errs := ParseTemplate(fv)
			for _, e := range errs {
				p.add(at+".BatchInput"+e.Path, "%s", e.Message)
			}
			b.BatchInput = &t
		default:
			p.add(at+"."+k, "unknown field %q in ItemBatcher", k)
		}
	}
	for _, f := range []string{"MaxItemsPerBatch", "MaxInputBytesPerBatch"} {
		if _, ok := o[f]; ok {
			if _, ok := o[f+"Path"]; ok {
				p.add(at, "%s and %sPath are exclusive", f, f)
			}
		}
	}
	if b.MaxItemsPerBatch == 0 && b.MaxItemsPerBatchPath == nil && b.MaxInputBytesPerBatch == 0 && b.MaxInputBytesPerBatchPath == nil {
		p.add(at, "ItemBatcher needs MaxItemsPerBatch, MaxInputBytesPerBatch or one of their Path forms")
	}
	return b
}

// tolerance parses a Map state's tolerated failure threshold.
func (p *parser) tolerance(obj map[string]any, at string) Tolerance {
	var t Tolerance
	if v, ok := obj["ToleratedFailureCount"]; ok {
		f, isNum := v.(float64)
		if !isNum || f < 0 || f != math.Trunc(f) {
			p.add(at+".ToleratedFailureCount", "must be a non-negative integer")
		}
		t.Count = &f
	}
	if v, ok := obj["ToleratedFailurePercentage"]; ok {
		f, isNum := v.(float64)
		if !isNum || f < 0 || f > 100 {
			p.add(at+".ToleratedFailurePercentage", "must be a number from 0 to 100")
		}
		t.Percentage = &f
	}
	t.CountPath = p.exclusivePath(obj, "ToleratedFailureCount", at)
	t.PercentagePath = p.exclusivePath(obj, "ToleratedFailurePercentage", at)
	return t
}

// label parses a Map state's Label: at most 40 characters, none of those Step Functions forbids
// in names (white space, brackets, wildcards, punctuation it reserves, control characters).
func (p *parser) label(v any, at string) string {
	s, ok := v.(string)
	if !ok || s == "" {
		p.add(at, "must be a non-empty string")
		return ""
	}
	if n := utf8.RuneCountInString(s); n > MaxLabelLength {
		p.add(at, "must be at most %d characters, got %d", MaxLabelLength, n)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || (r >= 0x7f && r <= 0x9f) || strings.ContainsRune("<>{}[]?*\"#%\\^|~`$&,;:/", r) {
			p.add(at, "must not contain %q (white space, brackets < > { } [ ], wildcards ? *, the characters \" # %% \\ ^ | ~ ` $ & , ; : / or control characters)", r)
			break
		}
	}
	return s
}

// processorConfig parses a Map ItemProcessor's ProcessorConfig: Mode INLINE (the default) or
// DISTRIBUTED, and for DISTRIBUTED an ExecutionType (STANDARD or EXPRESS).
func (p *parser) processorConfig(v any, at string) (mode, execType string) {
	o, ok := v.(map[string]any)
	if !ok {
		p.add(at, "must be a JSON object")
		return "", ""
	}
	mode = ModeInline
	for k, fv := range o {
		s, _ := fv.(string)
		switch k {
		case "Mode":
			if s != ModeInline && s != ModeDistributed {
				p.add(at+".Mode", "must be INLINE or DISTRIBUTED")
			}
			mode = s
		case "ExecutionType":
			if s != "STANDARD" && s != "EXPRESS" {
				p.add(at+".ExecutionType", "must be STANDARD or EXPRESS")
			}
			execType = s
		default:
			p.add(at+"."+k, "unknown field %q in ProcessorConfig (Mode, ExecutionType)", k)
		}
	}
	switch {
	case mode == ModeDistributed && execType == "":
		p.add(at+".ExecutionType", "a DISTRIBUTED Map needs an ExecutionType (STANDARD or EXPRESS)")
	case mode == ModeInline && execType != "":
		p.add(at+".ExecutionType", "ExecutionType applies to a DISTRIBUTED Map only")
	}
	return mode, execType
}

// Package sqsx maps Millrace's typed Queue spec to SQS queue attributes and tags, compares what SQS
// reports with what is declared semantically (so "0" and an absent attribute, or two spellings of
// the same redrive policy, never cause a perpetual update), classifies SQS errors, and builds the
// instrumented SQS client every Millrace binary uses.
package sqsx

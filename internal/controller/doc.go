// Package controller holds Millrace's reconcilers: thin shells that read a resource, ask the pure
// logic under internal/ what the world should look like, act on the difference, and report what
// they observed in status conditions and Events.
package controller

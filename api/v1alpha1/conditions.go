package v1alpha1

// Condition types shared by every Millrace kind (kstatus conventions).
const (
	// ConditionReady is True when the declared state holds in the world.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator is working towards Ready.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the operator cannot make progress without a change of the spec
	// (or of something outside Millrace); its message names the field or the refusal.
	ConditionStalled = "Stalled"
)

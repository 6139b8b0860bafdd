package dataset

// Fold values of relevance_labels.fold. The folds split by query, so no
// query of the test fold was seen while fitting theta or its calibration.
const (
	FoldTrain     = "train"     // fits the discriminator
	FoldCalibrate = "calibrate" // fits the Platt map from scores to P(relevant)
	FoldTest      = "test"      // held out: the gate's AUC and NDCG
)

// DefaultRelevantMinGrade is the lowest grade of relevance_labels that counts
// as relevant for the gate's calibration: on the world's scale (0..3), 1 is
// the right topic (another facet, or the right facet but low quality).
const DefaultRelevantMinGrade = 1

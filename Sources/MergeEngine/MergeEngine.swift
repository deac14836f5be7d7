// MergeEngine module

// Provenance module

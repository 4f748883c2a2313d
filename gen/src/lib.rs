//! canopy-gen

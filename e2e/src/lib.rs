//! End-to-end suite over generated bundles (see issue #7); holds shared test support.

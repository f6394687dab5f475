package wxidentity

// Version is the wx-edge release this module belongs to (the worker's
// Cargo.toml version; scripts/test-packages checks that they agree).
const Version = "0.1.0"

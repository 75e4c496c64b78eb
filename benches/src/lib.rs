//! Benchmarks of Outpost live in `benches/` (criterion) and the scripts beside them;
//! this library is empty.

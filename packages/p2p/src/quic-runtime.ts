/**
 * libp2p-quic runs QUIC (quinn and rustls) on a tokio runtime that its native addon makes when it
 * loads, with one worker thread per core unless `TOKIO_WORKER_THREADS` says otherwise. Gate's
 * QUIC traffic is small request/response exchanges, and each native read or write wakes a worker
 * from its sleep: with two of them taking turns, most of their time went into the kernel's
 * thread switches. One worker cut the CPU per forwarded request by about a third, and forwarded
 * throughput at concurrency 64 on a 2-core machine went from 1,168 to 1,719 req/s (bench/p2p.ts).
 *
 * Imported for this effect alone, before `@chainsafe/libp2p-quic`: the value is read once, when
 * the addon loads. A value already in the environment is kept.
 */
process.env.TOKIO_WORKER_THREADS ??= '1'

// ONNX Runtime (npm onnxruntime-node 1.19.2, CPU) forward of an exported causal LM (bench/import_speed_lm.sh):
// node ort_lm_bench.js MODEL.onnx THREADS REPEATS SEQ BATCH... -> a JSON line with the logits of fixed ids
// ((7 i + 3) mod 49152, [2, SEQ]) for the parity check, then one per batch: median seconds of REPEATS forwards
// of random [B, SEQ] ids after a warm-up (input "ids", output "logits": every position).
const ort = require('onnxruntime-node');
const [model, threads, repeats, seq, ...batches] = process.argv.slice(2);
(async () => {
  const s = await ort.InferenceSession.create(model, {intraOpNumThreads: +threads, interOpNumThreads: 1,
                                                       executionMode: 'sequential', graphOptimizationLevel: 'all'});
  // parity input: ids (7 i + 3) mod 49152 for [2, seq]
  const T = +seq;
  const pid = new ort.Tensor('int64', BigInt64Array.from({length: 2 * T}, (_, i) => BigInt((7 * i + 3) % 49152)), [2, T]);
  const pr = await s.run({ids: pid});
  console.log(JSON.stringify({check_logits: Array.from(pr.logits.data)}));
  for (const b of batches.map(Number)) {
    const x = new ort.Tensor('int64', BigInt64Array.from({length: b * T}, () => BigInt(4 + Math.floor(Math.random() * 49000))), [b, T]);
    await s.run({ids: x});
    const t = [];
    for (let r = 0; r < +repeats; ++r) { const t0 = process.hrtime.bigint(); await s.run({ids: x}); t.push(Number(process.hrtime.bigint() - t0) / 1e9); }
    t.sort((a, c) => a - c);
    const med = t[Math.floor(t.length / 2)];
    console.log(JSON.stringify({batch: b, seq: T, s_per_batch: +med.toFixed(4), tokens_per_s: +(b * T / med).toFixed(1)}));
  }
})();

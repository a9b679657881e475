// ONNX Runtime (npm onnxruntime-node 1.19.2, CPU) timing of an exported CLIP image tower (bench/import_speed_ort.sh):
// node ort_clip_bench.js MODEL.onnx THREADS REPEATS BATCH... -> one JSON line per batch, median seconds of REPEATS runs
// after one warm-up run, on random [B, 3, 224, 224] pixels (input "pixels", output "emb").
const ort = require('onnxruntime-node');
const [model, threads, repeats, ...batches] = process.argv.slice(2);
(async () => {
  const s = await ort.InferenceSession.create(model, {intraOpNumThreads: +threads, interOpNumThreads: 1,
                                                       executionMode: 'sequential', graphOptimizationLevel: 'all'});
  for (const b of batches.map(Number)) {
    const x = new ort.Tensor('float32', Float32Array.from({length: b * 3 * 224 * 224}, () => Math.random()), [b, 3, 224, 224]);
    await s.run({pixels: x});  // warm-up
    const t = [];
    for (let r = 0; r < +repeats; ++r) { const t0 = process.hrtime.bigint(); await s.run({pixels: x}); t.push(Number(process.hrtime.bigint() - t0) / 1e9); }
    t.sort((a, c) => a - c);
    const med = t[Math.floor(t.length / 2)];
    console.log(JSON.stringify({batch: b, s_per_batch: +med.toFixed(4), img_per_s: +(b / med).toFixed(2)}));
  }
})();

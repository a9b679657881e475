// The exported CLIP image tower on fixed pixels (sin(0.001 i), [2, 3, 224, 224]) through ONNX Runtime: prints the
// embeddings as JSON for bench/import_speed_ort.sh to compare with transformers.
const ort = require('onnxruntime-node');
(async () => {
  const s = await ort.InferenceSession.create(process.argv[2]);
  const n = 2 * 3 * 224 * 224;
  const x = new ort.Tensor('float32', Float32Array.from({length: n}, (_, i) => Math.sin(i * 0.001)), [2, 3, 224, 224]);
  const r = await s.run({pixels: x});
  console.log(JSON.stringify(Array.from(r.emb.data)));
})();

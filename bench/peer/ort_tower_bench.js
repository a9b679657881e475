// ONNX Runtime (npm onnxruntime-node 1.19.2, CPU execution provider) timing of the bench CLIP towers that
// bench/peer/clip_onnx.py exported (bench/engine.sh PARTS=ort), with the loop of `braid bench speed`'s inference
// (apps/braid/tools/speed.cpp): per repeat one warm forward of the batch, STEPS timed forwards of the batch
// (B rows), then 4*STEPS timed forwards of its first row (B=1). Before timing, checks ORT's embeddings of the dumped
// batch against the PyTorch peer's (max abs diff; exits 1 above 1e-4).
//
//   node ort_tower_bench.js DIR THREADS STEPS REPEATS TOWER...   (TOWER: image | text; one JSON line each)
//
// Session: intraOpNumThreads THREADS, interOpNumThreads 1, sequential, all graph optimisations; ORT's defaults
// otherwise (its intra-op pool spins while waiting, as it does out of the box).
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const [dir, threads, steps, repeats, ...towers] = process.argv.slice(2);
const tol = +(process.env.ORT_TOL || 1e-4);  // the embedding check's max abs diff (a quantized model needs more)
if (!towers.length) { console.error('usage: node ort_tower_bench.js DIR THREADS STEPS REPEATS TOWER...'); process.exit(2); }
const desc = JSON.parse(fs.readFileSync(path.join(dir, 'towers.json'), 'utf8'));

function readArray(file, dtype) {
  const buf = fs.readFileSync(path.join(dir, file));
  const ab = new Uint8Array(buf).buffer;  // a copy: aligned for the typed array
  return dtype === 'int64' ? new BigInt64Array(ab) : new Float32Array(ab);
}
const prod = (s) => s.reduce((a, b) => a * b, 1);

function median(v) { const s = [...v].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; }

(async () => {
  for (const name of towers) {
    const t = desc.towers[name];
    if (!t) { console.error(`${dir}/towers.json: no tower '${name}' (has ${Object.keys(desc.towers)})`); process.exit(2); }
    const s = await ort.InferenceSession.create(path.join(dir, t.model), {
      intraOpNumThreads: +threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all'});
    const feeds = {}, one = {};
    for (const inp of t.inputs) {
      const data = readArray(inp.file, inp.dtype);
      if (data.length !== prod(inp.shape)) { console.error(`${inp.file}: ${data.length} values, expected ${prod(inp.shape)}`); process.exit(2); }
      feeds[inp.name] = new ort.Tensor(inp.dtype, data, inp.shape);
      one[inp.name] = new ort.Tensor(inp.dtype, data.slice(0, prod(inp.shape.slice(1))), [1, ...inp.shape.slice(1)]);
    }
    const B = t.inputs[0].shape[0];
    const ref = readArray(t.output.file, 'float32');
    const got = (await s.run(feeds))[t.output.name].data;
    let diff = 0;
    for (let i = 0; i < ref.length; ++i) diff = Math.max(diff, Math.abs(ref[i] - got[i]));
    if (got.length !== ref.length || !(diff <= tol)) {
      console.error(`${name}: ONNX Runtime's embeddings differ from the PyTorch peer's by ${diff} (${got.length} vs ${ref.length} values)`);
      process.exit(1);
    }
    const rb = [], r1 = [], runs = [];
    for (let r = 0; r < +repeats; ++r) {
      await s.run(feeds);  // warm
      let t0 = process.hrtime.bigint();
      for (let i = 0; i < +steps; ++i) await s.run(feeds);
      rb.push(+steps * B / (Number(process.hrtime.bigint() - t0) / 1e9));
      const n1 = 4 * +steps;
      t0 = process.hrtime.bigint();
      for (let i = 0; i < n1; ++i) await s.run(one);
      r1.push(n1 / (Number(process.hrtime.bigint() - t0) / 1e9));
      runs.push({infer_samples_per_s_b64: rb[r], infer_samples_per_s_b1: r1[r]});
    }
    console.log(JSON.stringify({tower: name, infer_samples_per_s_b64: median(rb), infer_samples_per_s_b1: median(r1),
                                runs, threads: +threads, batch_size: B, steps: +steps, repeats: +repeats,
                                max_abs_diff_vs_torch: diff, ort: require('onnxruntime-node/package.json').version}));
  }
})().catch((e) => { console.error(`ort_tower_bench: ${e.message}`); process.exit(1); });

package org.xlir.core;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoggingLevel;
import ai.onnxruntime.OrtSession;


import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * One loaded exported model: the ONNX session and the Hugging Face tokenizer, with the same
 * encoding steps as the Python {@code OnnxEncoder} (xlir_plugin/encoder.py): prefix from the
 * manifest, truncation to {@code max_length} tokens (special tokens included), no padding at
 * tokenization, texts sorted by token length (longest first, stable) and cut into ONNX runs of at most
 * batch_size rows and max_batch_tokens tokens, padded per run,
 * {@code token_type_ids} of zeros when the graph takes them, pooling and L2 normalisation as the
 * manifest says when the graph outputs token states, and L2 normalisation of pooled outputs.
 *
 * <p>Thread-safe: the ONNX session and the tokenizer may be used from several threads.
 */
public final class XlirModel implements Closeable {

    public static final String MODEL_FILE = "model.onnx";
    public static final String TOKENIZER_FILE = "tokenizer.json";
    public static final List<String> FILES = List.of(MODEL_FILE, TOKENIZER_FILE, ModelManifest.FILE);
    private static final List<String> PAD_TOKENS = List.of("<pad>", "[PAD]", "<|pad|>");

    private final String name;
    private final Path dir;
    private final ModelManifest manifest;
    private final OrtEnvironment env;
    private final OrtSession session;
    private final HuggingFaceTokenizer tokenizer;
    private final PassageCutter cutter;
    private final long padId;
    private final boolean needTokenTypes;
    private final int runBatchSize;
    private final int maxBatchTokens;
    /** encodes hold the read lock; close takes the write lock, so a session is never freed mid-run */
    private final ReadWriteLock lifecycle = new ReentrantReadWriteLock();
    private boolean closed;

    /** Thrown by an encode on a model that was closed (replaced on disk, or node shutting down). */
    public static final class ClosedException extends IllegalStateException {
        ClosedException(String name) {
            super("xlir model [" + name + "] was unloaded");
        }
    }

    private XlirModel(
        String name,
        Path dir,
        ModelManifest manifest,
        OrtEnvironment env,
        OrtSession session,
        HuggingFaceTokenizer tokenizer,
        PassageCutter cutter,
        long padId,
        boolean needTokenTypes,
        int runBatchSize,
        int maxBatchTokens
    ) {
        this.name = name;
        this.dir = dir;
        this.manifest = manifest;
        this.env = env;
        this.session = session;
        this.tokenizer = tokenizer;
        this.cutter = cutter;
        this.padId = padId;
        this.needTokenTypes = needTokenTypes;
        this.runBatchSize = runBatchSize;
        this.maxBatchTokens = maxBatchTokens;
    }

    /**
     * Loads {@code dir} (already checked to hold the three files and a manifest whose sha256 matches
     * model.onnx). Must run with the plugin's class loader as the thread's context class loader.
     */
    public static XlirModel load(String name, Path dir, ModelManifest manifest, int intraOpThreads, int runBatchSize, int maxBatchTokens)
        throws Exception {
        Path modelPath = dir.resolve(MODEL_FILE);
        OrtEnvironment env = OrtEnvironment.getEnvironment(OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, "xlir");
        OrtSession session;
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            options.setIntraOpNumThreads(intraOpThreads);
            options.setInterOpNumThreads(1);
            options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            options.setSessionLogLevel(OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR);
            session = env.createSession(modelPath.toString(), options);
        } catch (OrtException e) {
            throw new ModelException(name, MODEL_FILE + " is not a model onnxruntime can load: " + e.getMessage(), e);
        }
        HuggingFaceTokenizer tokenizer = null;
        PassageCutter cutter = null;
        try {
            Set<String> inputs = session.getInputNames();
            if (inputs.contains("input_ids") == false || inputs.contains("attention_mask") == false) {
                throw new ModelException(name, MODEL_FILE + " lacks the inputs [input_ids, attention_mask] (inputs: " + inputs + ")");
            }
            Set<String> outputs = session.getOutputNames();
            if (outputs.contains(manifest.output()) == false) {
                throw new ModelException(name, MODEL_FILE + " has no output [" + manifest.output() + "] (outputs: " + outputs + ")");
            }
            Path tokenizerPath = dir.resolve(TOKENIZER_FILE);
            Map<String, String> options = new HashMap<>();
            options.put("addSpecialTokens", "true");
            options.put("truncation", "true"); // longest_first, right side, like enable_truncation(max_length)
            options.put("padding", "false");
            options.put("maxLength", Integer.toString(manifest.maxLength()));
            options.put("modelMaxLength", Integer.toString(manifest.maxLength()));
            options.put("stride", "0");
            options.put("withOverflowingTokens", "false");
            try {
                tokenizer = HuggingFaceTokenizer.newInstance(tokenizerPath, options);
            } catch (RuntimeException e) {
                throw new ModelException(name, TOKENIZER_FILE + " is not a tokenizer the tokenizers library can load: " + e.getMessage(), e);
            }
            long padId = padId(tokenizerPath);
            cutter = new PassageCutter(tokenizerPath);
            return new XlirModel(name, dir, manifest, env, session, tokenizer, cutter, padId, inputs.contains("token_type_ids"), runBatchSize, maxBatchTokens);
        } catch (Exception | Error e) {
            if (tokenizer != null) {
                tokenizer.close();
            }
            if (cutter != null) {
                cutter.close();
            }
            session.close();
            throw e;
        }
    }

    public String name() {
        return name;
    }

    public Path dir() {
        return dir;
    }

    public ModelManifest manifest() {
        return manifest;
    }

    /** Embeds {@code texts} with the prefix for {@code type}. */
    public EmbeddingResult encode(List<String> texts, InputType type) throws OrtException {
        String prefix = manifest.prefix(type);
        if (prefix.isEmpty()) {
            return encodePrefixed(texts);
        }
        List<String> prefixed = new ArrayList<>(texts.size());
        for (String t : texts) {
            prefixed.add(prefix + t);
        }
        return encodePrefixed(prefixed);
    }

    /** {@code text} cut into passages ({@link Chunking}), with this model's tokenizer. */
    public List<Chunking.Span> passages(String text, Chunking.Settings settings) {
        lifecycle.readLock().lock();
        try {
            if (closed) {
                throw new ClosedException(name);
            }
            return cutter.passages(text, settings);
        } finally {
            lifecycle.readLock().unlock();
        }
    }

    /** Embeds texts that already carry their prefix. */
    public EmbeddingResult encodePrefixed(List<String> texts) throws OrtException {
        lifecycle.readLock().lock();
        try {
            if (closed) {
                throw new ClosedException(name);
            }
            return encodeLocked(texts);
        } finally {
            lifecycle.readLock().unlock();
        }
    }

    private EmbeddingResult encodeLocked(List<String> texts) throws OrtException {
        int n = texts.size();
        float[][] out = new float[n][];
        boolean[] truncated = new boolean[n];
        if (n == 0) {
            return new EmbeddingResult(name, manifest, out, truncated);
        }
        Encoding[] encodings = tokenizer.batchEncode(texts);
        long[][] ids = new long[n][];
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            ids[i] = encodings[i].getIds();
            truncated[i] = encodings[i].exceedMaxLength();
            order[i] = i;
        }
        // longest first, stable (numpy argsort(-lengths, kind="stable"))
        Arrays.sort(order, (a, b) -> Integer.compare(ids[b].length, ids[a].length));
        // at most runBatchSize rows and maxBatchTokens tokens per run (a longer text runs alone):
        // the Python encoder's rule, so both quantize the same activations together
        for (int start = 0, rows; start < n; start += rows) {
            int width = ids[order[start]].length;
            rows = Math.min(n - start, Math.max(1, Math.min(runBatchSize, maxBatchTokens / width)));
            long[] idBuf = new long[rows * width];
            long[] maskBuf = new long[rows * width];
            Arrays.fill(idBuf, padId);
            for (int r = 0; r < rows; r++) {
                long[] row = ids[order[start + r]];
                System.arraycopy(row, 0, idBuf, r * width, row.length);
                Arrays.fill(maskBuf, r * width, r * width + row.length, 1L);
            }
            float[][] vectors = run(idBuf, maskBuf, rows, width);
            for (int r = 0; r < rows; r++) {
                out[order[start + r]] = vectors[r];
            }
        }
        return new EmbeddingResult(name, manifest, out, truncated);
    }

    private float[][] run(long[] idBuf, long[] maskBuf, int rows, int width) throws OrtException {
        long[] shape = { rows, width };
        Map<String, OnnxTensor> feeds = new HashMap<>();
        try {
            feeds.put("input_ids", OnnxTensor.createTensor(env, LongBuffer.wrap(idBuf), shape));
            feeds.put("attention_mask", OnnxTensor.createTensor(env, LongBuffer.wrap(maskBuf), shape));
            if (needTokenTypes) {
                feeds.put("token_type_ids", OnnxTensor.createTensor(env, LongBuffer.wrap(new long[rows * width]), shape));
            }
            try (OrtSession.Result result = session.run(feeds, Set.of(manifest.output()))) {
                OnnxValue value = result.get(manifest.output())
                    .orElseThrow(() -> new ModelException(name, "the model returned no [" + manifest.output() + "]"));
                if (!(value instanceof OnnxTensor tensor)) {
                    throw new ModelException(name, "output [" + manifest.output() + "] is not a tensor");
                }
                long[] outShape = tensor.getInfo().getShape();
                FloatBuffer data = tensor.getFloatBuffer();
                return pool(data, outShape, maskBuf, rows, width);
            }
        } finally {
            for (OnnxTensor t : feeds.values()) {
                t.close();
            }
        }
    }

    private float[][] pool(FloatBuffer data, long[] shape, long[] mask, int rows, int width) {
        float[][] vectors = new float[rows][];
        if (shape.length == 2) {
            int dims = (int) shape[1];
            checkDims(dims);
            for (int r = 0; r < rows; r++) {
                float[] v = new float[dims];
                data.get(r * dims, v);
                vectors[r] = v;
            }
        } else if (shape.length == 3) {
            int seq = (int) shape[1];
            int dims = (int) shape[2];
            checkDims(dims);
            for (int r = 0; r < rows; r++) {
                float[] v = new float[dims];
                switch (manifest.pooling()) {
                    case "cls" -> data.get(r * seq * dims, v);
                    case "mean" -> {
                        double[] sum = new double[dims];
                        float count = 0;
                        for (int t = 0; t < Math.min(seq, width); t++) {
                            if (mask[r * width + t] == 0) {
                                continue;
                            }
                            count++;
                            int base = (r * seq + t) * dims;
                            for (int d = 0; d < dims; d++) {
                                sum[d] += data.get(base + d);
                            }
                        }
                        float denom = Math.max(count, 1e-9f);
                        for (int d = 0; d < dims; d++) {
                            v[d] = (float) (sum[d] / denom);
                        }
                    }
                    default -> throw new ModelException(name, "unknown pooling [" + manifest.pooling() + "] in " + ModelManifest.FILE);
                }
                vectors[r] = v;
            }
        } else {
            throw new ModelException(name, "unexpected output shape " + Arrays.toString(shape));
        }
        if (manifest.normalize()) {
            for (float[] v : vectors) {
                l2Normalize(v);
            }
        }
        return vectors;
    }

    private void checkDims(int dims) {
        if (dims != manifest.dim()) {
            throw new ModelException(name, "model output has " + dims + " dims, " + ModelManifest.FILE + " says " + manifest.dim());
        }
    }

    static void l2Normalize(float[] v) {
        double sq = 0;
        for (float x : v) {
            sq += (double) x * x;
        }
        float norm = (float) Math.max(Math.sqrt(sq), 1e-12);
        for (int i = 0; i < v.length; i++) {
            v[i] /= norm;
        }
    }

    /** The pad token id as the Python encoder finds it after {@code no_padding()}: by name, else 0. */
    @SuppressWarnings("unchecked")
    static long padId(Path tokenizerJson) throws IOException {
        Map<String, Object> json;
        try (InputStream in = Files.newInputStream(tokenizerJson)) {
            json = Json.readObject(in);
        }
        Map<String, Long> added = new HashMap<>();
        if (json.get("added_tokens") instanceof List<?> list) {
            for (Object o : list) {
                if (o instanceof Map<?, ?> m && m.get("content") instanceof String c && m.get("id") instanceof Number id) {
                    added.put(c, id.longValue());
                }
            }
        }
        Object vocab = json.get("model") instanceof Map<?, ?> model ? model.get("vocab") : null;
        for (String token : PAD_TOKENS) {
            if (added.containsKey(token)) {
                return added.get(token);
            }
            if (vocab instanceof Map<?, ?> map && map.get(token) instanceof Number id) {
                return id.longValue();
            }
            if (vocab instanceof List<?> list) { // Unigram: [[token, score], ...]
                for (int i = 0; i < list.size(); i++) {
                    if (list.get(i) instanceof List<?> entry && entry.isEmpty() == false && token.equals(entry.get(0))) {
                        return i;
                    }
                }
            }
        }
        return 0;
    }

    /**
     * Frees the native session and tokenizer once no encode is running (waits up to 30 s; past
     * that they are left to the process exit rather than freed under a running encode).
     */
    @Override
    public void close() {
        boolean locked;
        try {
            locked = lifecycle.writeLock().tryLock(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return;
        }
        if (locked == false) {
            return;
        }
        try {
            if (closed) {
                return;
            }
            closed = true;
            tokenizer.close();
            cutter.close();
            try {
                session.close();
            } catch (OrtException e) {
                // nothing more to do: the session is gone either way
            }
        } finally {
            lifecycle.writeLock().unlock();
        }
    }
}

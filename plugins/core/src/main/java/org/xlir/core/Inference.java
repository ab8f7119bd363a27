package org.xlir.core;

import java.io.Closeable;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;

/**
 * Runs every encode on the plugin's own pools, never on the caller's (transport, write, search)
 * thread: ingest batches on the ingest pool, queries and REST requests on the search pool.
 * Requests that already hold a list of texts (REST, query vectors) run as one task; ingest
 * documents go through a per-model {@link MicroBatcher}. Engine-neutral: each adapter supplies
 * its thread pools as {@link Pools} and wraps listeners for its thread context and exception
 * types.
 */
public final class Inference implements Closeable {

    /** The engine's two fixed pools, and a timer that runs a task later on the ingest pool. */
    public interface Pools {
        Executor search();

        /** Must accept every task (forced into the queue, or run inline when rejected): a batch may not be lost. */
        Executor ingest();

        void scheduleIngest(Runnable task, long delayNanos);
    }

    private final Pools pools;
    private final Function<Exception, Exception> translate;
    private final ModelRegistry registry;
    private final int ingestBatchSize;
    private final long ingestBatchWaitNanos;
    private final int ingestMaxQueued;
    private final Map<String, MicroBatcher> batchers = new ConcurrentHashMap<>();
    private volatile boolean closed;
    private final AtomicLong ingestBatches = new AtomicLong();
    private final AtomicLong ingestTexts = new AtomicLong();
    private final AtomicLong ingestNanos = new AtomicLong();

    /**
     * {@code translate} turns core's exceptions ({@link ModelNotFoundException},
     * {@link OverloadedException}) into the engine's, so its REST layer answers 404 / 429.
     */
    public Inference(
        Pools pools,
        Function<Exception, Exception> translate,
        ModelRegistry registry,
        int ingestBatchSize,
        long ingestBatchWaitNanos,
        int ingestMaxQueued
    ) {
        this.pools = pools;
        this.translate = translate;
        this.registry = registry;
        this.ingestBatchSize = ingestBatchSize;
        this.ingestBatchWaitNanos = ingestBatchWaitNanos;
        this.ingestMaxQueued = ingestMaxQueued;
    }

    public ModelRegistry registry() {
        return registry;
    }

    /**
     * Embeds {@code texts} in one task (loading the model if needed) on the search pool, so that
     * queries do not wait behind ingest batches.
     */
    public void embed(String model, List<String> texts, InputType type, Listener<EmbeddingResult> listener) {
        fork(listener, () -> registry.encode(model, m -> m.encode(texts, type)));
    }

    /** Reads a model's manifest on the search pool (disk access). */
    public void manifest(String model, Listener<ModelManifest> listener) {
        fork(listener, () -> registry.manifest(model));
    }

    /** Runs a blocking piece of work on the search pool. */
    public <T> void fork(Listener<T> caller, Callable<T> work) {
        Listener<T> listener = caller.translatingFailures(translate);
        if (closed) {
            listener.onFailure(new IllegalStateException("the xlir plugin is shutting down"));
            return;
        }
        try {
            pools.search().execute(() -> {
                T value;
                try {
                    value = work.call();
                } catch (Exception e) {
                    listener.onFailure(e);
                    return;
                }
                listener.onResponse(value);
            });
        } catch (RuntimeException e) { // rejected: the search pool's queue is full
            listener.onFailure(e);
        }
    }

    /** Ingest counters since the node started: batches, texts, milliseconds spent encoding. */
    public Map<String, Object> stats() {
        long batches = ingestBatches.get();
        long texts = ingestTexts.get();
        return Map.of(
            "ingest_batches",
            batches,
            "ingest_texts",
            texts,
            "ingest_encode_ms",
            ingestNanos.get() / 1_000_000,
            "ingest_mean_batch",
            batches == 0 ? 0.0 : (double) texts / batches
        );
    }

    /** {@code text}'s passages ({@link Chunking}) with the named model's tokenizer, in the caller's thread. */
    public List<Chunking.Span> passages(String model, String text, Chunking.Settings settings) throws Exception {
        return registry.encode(model, loaded -> loaded.passages(text, settings));
    }

    /**
     * Embeds one text together with other texts submitted within the batch window (ingest path).
     * The listener runs on the ingest pool: adapters restore the submitter's thread context.
     */
    public void embedBatched(String model, String text, InputType type, Listener<Embedding> caller) {
        Listener<Embedding> listener = caller.translatingFailures(translate);
        if (closed) {
            listener.onFailure(new IllegalStateException("the xlir plugin is shutting down"));
            return;
        }
        MicroBatcher batcher;
        try {
            batcher = batchers.computeIfAbsent(ModelRegistry.validateName(model), this::newBatcher);
        } catch (IllegalArgumentException e) {
            listener.onFailure(e);
            return;
        }
        batcher.submit(type, text, listener);
    }

    private MicroBatcher newBatcher(String model) {
        MicroBatcher.Scheduler scheduler = new MicroBatcher.Scheduler() {
            @Override
            public void execute(Runnable task) {
                pools.ingest().execute(task);
            }

            @Override
            public void schedule(Runnable task, long delayNanos) {
                pools.scheduleIngest(task, delayNanos);
            }
        };
        return new MicroBatcher(model, ingestBatchSize, ingestBatchWaitNanos, ingestMaxQueued, scheduler, batch -> runBatch(model, batch));
    }

    private void runBatch(String model, List<MicroBatcher.Pending> batch) {
        EmbeddingResult result;
        long start = System.nanoTime();
        try {
            result = registry.encode(model, loaded -> {
                List<String> texts = new ArrayList<>(batch.size());
                for (MicroBatcher.Pending p : batch) {
                    texts.add(loaded.manifest().prefix(p.type()) + p.text());
                }
                return loaded.encodePrefixed(texts);
            });
        } catch (Exception e) {
            for (MicroBatcher.Pending p : batch) {
                p.listener().onFailure(e);
            }
            return;
        }
        ingestBatches.incrementAndGet();
        ingestTexts.addAndGet(batch.size());
        ingestNanos.addAndGet(System.nanoTime() - start);
        for (int i = 0; i < batch.size(); i++) {
            batch.get(i).listener().onResponse(new Embedding(result.vectors()[i], result.truncated()[i], result.manifest()));
        }
    }

    @Override
    public void close() {
        closed = true;
        for (MicroBatcher b : batchers.values()) {
            b.failAll(new IllegalStateException("the xlir plugin is shutting down"));
        }
        registry.close();
    }
}

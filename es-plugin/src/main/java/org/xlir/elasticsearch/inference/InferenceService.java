package org.xlir.elasticsearch.inference;

import org.elasticsearch.action.ActionListener;
import org.elasticsearch.action.ActionRunnable;
import org.elasticsearch.action.support.ContextPreservingActionListener;
import org.elasticsearch.common.util.concurrent.AbstractRunnable;
import org.elasticsearch.common.util.concurrent.ThreadContext;
import org.elasticsearch.core.TimeValue;
import org.elasticsearch.threadpool.ThreadPool;
import org.xlir.elasticsearch.model.EmbeddingResult;
import org.xlir.elasticsearch.model.InputType;
import org.xlir.elasticsearch.model.ModelManifest;
import org.xlir.elasticsearch.model.ModelRegistry;

import java.io.Closeable;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;

/**
 * Runs every encode on the plugin's own fixed thread pools, never on the caller's (transport,
 * write, search) thread: ingest batches on {@code xlir_inference}, queries and REST requests on
 * {@code xlir_search}. Requests that already hold a list of texts (REST,
 * query vector builder) run as one task; ingest documents go through a per-model
 * {@link MicroBatcher}. Listeners are completed in the caller's thread context.
 */
public final class InferenceService implements Closeable {

    private final ThreadPool threadPool;
    private final Executor executor;
    private final Executor searchExecutor;
    private final ModelRegistry registry;
    private final int ingestBatchSize;
    private final TimeValue ingestBatchWait;
    private final int ingestMaxQueued;
    private final Map<String, MicroBatcher> batchers = new ConcurrentHashMap<>();
    private volatile boolean closed;
    private final java.util.concurrent.atomic.AtomicLong ingestBatches = new java.util.concurrent.atomic.AtomicLong();
    private final java.util.concurrent.atomic.AtomicLong ingestTexts = new java.util.concurrent.atomic.AtomicLong();
    private final java.util.concurrent.atomic.AtomicLong ingestNanos = new java.util.concurrent.atomic.AtomicLong();

    public InferenceService(
        ThreadPool threadPool,
        String executorName,
        String searchExecutorName,
        ModelRegistry registry,
        int ingestBatchSize,
        TimeValue ingestBatchWait,
        int ingestMaxQueued
    ) {
        this.threadPool = threadPool;
        this.executor = threadPool.executor(executorName);
        this.searchExecutor = threadPool.executor(searchExecutorName);
        this.registry = registry;
        this.ingestBatchSize = ingestBatchSize;
        this.ingestBatchWait = ingestBatchWait;
        this.ingestMaxQueued = ingestMaxQueued;
    }

    public ModelRegistry registry() {
        return registry;
    }

    /**
     * Embeds {@code texts} in one task (loading the model if needed) on the plugin's search pool,
     * so that queries do not wait behind ingest batches.
     */
    public void embed(String model, List<String> texts, InputType type, ActionListener<EmbeddingResult> listener) {
        if (closed) {
            listener.onFailure(new IllegalStateException("the xlir plugin is shutting down"));
            return;
        }
        searchExecutor.execute(ActionRunnable.supply(listener, () -> registry.encode(model, m -> m.encode(texts, type))));
    }

    /** Ingest counters since the node started: batches, texts, milliseconds spent encoding. */
    public java.util.Map<String, Object> stats() {
        long batches = ingestBatches.get();
        long texts = ingestTexts.get();
        return java.util.Map.of(
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

    /** Reads a model's manifest on the plugin's pool (disk access). */
    public void manifest(String model, ActionListener<ModelManifest> listener) {
        searchExecutor.execute(ActionRunnable.supply(listener, () -> registry.manifest(model)));
    }

    /** Runs a blocking piece of work on the plugin's pool. */
    public <T> void fork(ActionListener<T> listener, org.elasticsearch.common.CheckedSupplier<T, Exception> work) {
        searchExecutor.execute(ActionRunnable.supply(listener, work));
    }

    /**
     * Embeds one text together with other texts submitted within the batch window (ingest path).
     * The listener runs in the submitter's thread context.
     */
    public void embedBatched(String model, String text, InputType type, ActionListener<Embedding> listener) {
        ThreadContext threadContext = threadPool.getThreadContext();
        ActionListener<Embedding> preserving = ContextPreservingActionListener.wrapPreservingContext(listener, threadContext);
        if (closed) {
            preserving.onFailure(new IllegalStateException("the xlir plugin is shutting down"));
            return;
        }
        MicroBatcher batcher;
        try {
            batcher = batchers.computeIfAbsent(ModelRegistry.validateName(model), this::newBatcher);
        } catch (IllegalArgumentException e) {
            preserving.onFailure(e);
            return;
        }
        // the batch tasks run in an empty context: each listener restores its own
        try (ThreadContext.StoredContext ignored = threadContext.stashContext()) {
            batcher.submit(type, text, preserving);
        }
    }

    private MicroBatcher newBatcher(String model) {
        MicroBatcher.Scheduler scheduler = new MicroBatcher.Scheduler() {
            @Override
            public void execute(Runnable task) {
                executor.execute(new Guarded(task));
            }

            @Override
            public void schedule(Runnable task, TimeValue delay) {
                threadPool.schedule(new Guarded(task), delay, executor);
            }
        };
        return new MicroBatcher(model, ingestBatchSize, ingestBatchWait, ingestMaxQueued, scheduler, batch -> runBatch(model, batch));
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

    /** A batch task that cannot be lost: a rejected or failing task still runs its drain inline. */
    private static final class Guarded extends AbstractRunnable {
        private final Runnable task;

        Guarded(Runnable task) {
            this.task = task;
        }

        @Override
        protected void doRun() {
            task.run();
        }

        @Override
        public void onFailure(Exception e) {
            throw new IllegalStateException("xlir batch task failed", e);
        }

        @Override
        public void onRejection(Exception e) {
            // the pool's queue is full: drain on this thread rather than leave documents waiting
            task.run();
        }

        @Override
        public boolean isForceExecution() {
            return true;
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

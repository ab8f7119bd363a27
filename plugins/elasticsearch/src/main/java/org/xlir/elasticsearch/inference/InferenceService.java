package org.xlir.elasticsearch.inference;

import org.elasticsearch.ResourceNotFoundException;
import org.elasticsearch.action.ActionListener;
import org.elasticsearch.action.support.ContextPreservingActionListener;
import org.elasticsearch.common.util.concurrent.AbstractRunnable;
import org.elasticsearch.common.util.concurrent.EsRejectedExecutionException;
import org.elasticsearch.common.util.concurrent.ThreadContext;
import org.elasticsearch.core.TimeValue;
import org.elasticsearch.threadpool.ThreadPool;
import org.xlir.core.Chunking;
import org.xlir.core.Embedding;
import org.xlir.core.EmbeddingResult;
import org.xlir.core.FieldEmbedder;
import org.xlir.core.Inference;
import org.xlir.core.InputType;
import org.xlir.core.Listener;
import org.xlir.core.ModelNotFoundException;
import org.xlir.core.ModelRegistry;
import org.xlir.core.OverloadedException;
import org.xlir.core.XlirDefaults;

import java.io.Closeable;
import java.util.List;
import java.util.concurrent.Executor;

/**
 * Core's {@link Inference} on Elasticsearch's thread pools: {@code xlir_inference} (ingest
 * batches) and {@code xlir_search} (queries, REST). Listeners complete in the caller's thread
 * context (security headers preserved) and see Elasticsearch's exception types: a missing model
 * is a {@link ResourceNotFoundException} (404), a full batcher an
 * {@link EsRejectedExecutionException} (429).
 */
public final class InferenceService implements Closeable, FieldEmbedder.BatchedEmbed {

    private final ThreadPool threadPool;
    private final Inference inference;

    public InferenceService(ThreadPool threadPool, ModelRegistry registry, int ingestBatchSize, TimeValue ingestBatchWait, int ingestMaxQueued) {
        this.threadPool = threadPool;
        Executor search = threadPool.executor(XlirDefaults.SEARCH_THREAD_POOL_NAME);
        Executor ingest = threadPool.executor(XlirDefaults.THREAD_POOL_NAME);
        Inference.Pools pools = new Inference.Pools() {
            @Override
            public Executor search() {
                return search;
            }

            @Override
            public Executor ingest() {
                return task -> ingest.execute(new Forced(task));
            }

            @Override
            public void scheduleIngest(Runnable task, long delayNanos) {
                threadPool.schedule(new Forced(task), TimeValue.timeValueNanos(delayNanos), ingest);
            }
        };
        this.inference = new Inference(pools, InferenceService::translate, registry, ingestBatchSize, ingestBatchWait.nanos(), ingestMaxQueued);
    }

    public Inference core() {
        return inference;
    }

    /** Embeds {@code texts} in one task on {@code xlir_search}. */
    public void embed(String model, List<String> texts, InputType type, ActionListener<EmbeddingResult> listener) {
        inference.embed(model, texts, type, Listener.of(listener::onResponse, listener::onFailure));
    }

    /** One ingest text in the model's micro-batch; the listener runs in the submitter's thread context. */
    @Override
    public void embedBatched(String model, String text, InputType type, Listener<Embedding> listener) {
        ThreadContext threadContext = threadPool.getThreadContext();
        ActionListener<Embedding> preserving = ContextPreservingActionListener.wrapPreservingContext(
            ActionListener.wrap(listener::onResponse, listener::onFailure),
            threadContext
        );
        // the batch tasks run in an empty context: each listener restores its own
        try (ThreadContext.StoredContext ignored = threadContext.stashContext()) {
            inference.embedBatched(model, text, type, Listener.of(preserving::onResponse, preserving::onFailure));
        }
    }

    /** {@code text}'s passages for the processor's {@code chunking}, in the caller's thread. */
    @Override
    public List<Chunking.Span> passages(String model, String text, Chunking.Settings settings) throws Exception {
        try {
            return inference.passages(model, text, settings);
        } catch (Exception e) {
            throw translate(e);
        }
    }

    /** Core's exceptions as the engine's: 404 for a missing model, 429 for a full batcher. */
    static Exception translate(Exception e) {
        if (e instanceof ModelNotFoundException) {
            return new ResourceNotFoundException(e.getMessage().replace("{}", "{ }"));
        }
        if (e instanceof OverloadedException) {
            return new EsRejectedExecutionException(e.getMessage());
        }
        return e;
    }

    /** A batch task that cannot be lost: queued even past the queue size; a rejected one (shutdown) drains inline. */
    private static final class Forced extends AbstractRunnable {
        private final Runnable task;

        Forced(Runnable task) {
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
            task.run();
        }

        @Override
        public boolean isForceExecution() {
            return true;
        }
    }

    @Override
    public void close() {
        inference.close();
    }
}

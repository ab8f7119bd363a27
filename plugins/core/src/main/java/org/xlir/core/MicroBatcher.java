package org.xlir.core;


import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Gathers single texts (one per ingest document) into batches for one model: a batch is encoded
 * as soon as {@code maxBatch} texts wait, or once no text has arrived for {@code maxWaitNanos}
 * (at most {@code MAX_AGE_FACTOR * maxWaitNanos} after the first one). A bulk request's documents
 * reach the pipeline in one quick loop, so they are encoded together. Batches run on the
 * plugin's executor; the caller never blocks.
 */
final class MicroBatcher {

    /** Runs a batch of texts (the model's prefix not yet applied); completes each listener exactly once. */
    interface BatchRunner {
        void run(List<Pending> batch);
    }

    /** How to run a task now or later on the plugin's executor (tests use a plain executor). */
    interface Scheduler {
        void execute(Runnable task);

        void schedule(Runnable task, long delayNanos);
    }

    record Pending(InputType type, String text, Listener<Embedding> listener) {}

    private final String model;
    private final int maxBatch;
    private final long maxWaitNanos;
    private final int maxQueued;
    private final Scheduler scheduler;
    private final BatchRunner runner;
    private final ConcurrentLinkedQueue<Pending> queue = new ConcurrentLinkedQueue<>();
    private final AtomicInteger queued = new AtomicInteger();
    private final AtomicBoolean timerArmed = new AtomicBoolean();
    private volatile long lastArrival;
    private volatile long armedAt;

    /** A batch waits for more texts at most this many times {@code maxWaitNanos} in all. */
    static final int MAX_AGE_FACTOR = 20;

    MicroBatcher(String model, int maxBatch, long maxWaitNanos, int maxQueued, Scheduler scheduler, BatchRunner runner) {
        this.model = model;
        this.maxBatch = maxBatch;
        this.maxWaitNanos = maxWaitNanos;
        this.maxQueued = maxQueued;
        this.scheduler = scheduler;
        this.runner = runner;
    }

    void submit(InputType type, String text, Listener<Embedding> listener) {
        int n = queued.incrementAndGet();
        if (n > maxQueued) {
            queued.decrementAndGet();
            listener.onFailure(
                new OverloadedException(
                    "xlir model [" + model + "] has " + maxQueued + " texts waiting to be encoded (xlir.ingest.max_queued); retry later"
                )
            );
            return;
        }
        queue.add(new Pending(type, text, listener));
        long now = System.nanoTime();
        lastArrival = now;
        if (n % maxBatch == 0 || maxWaitNanos == 0) {
            scheduler.execute(this::drainOne);
        } else if (timerArmed.compareAndSet(false, true)) {
            armedAt = now;
            scheduler.schedule(this::onTimer, maxWaitNanos);
        }
    }

    /** Texts waiting (for tests and stats). */
    int queued() {
        return queued.get();
    }

    private int drainOne() {
        List<Pending> batch = new ArrayList<>(maxBatch);
        Pending p;
        while (batch.size() < maxBatch && (p = queue.poll()) != null) {
            queued.decrementAndGet();
            batch.add(p);
        }
        if (batch.isEmpty() == false) {
            try {
                runner.run(batch);
            } catch (Exception e) {
                for (Pending item : batch) {
                    item.listener().onFailure(e);
                }
            }
        }
        return batch.size();
    }

    private void onTimer() {
        long now = System.nanoTime();
        long quiet = now - lastArrival;
        if (queued.get() < maxBatch && quiet < maxWaitNanos && now - armedAt < MAX_AGE_FACTOR * maxWaitNanos) {
            // texts are still streaming in: wait until they pause (the timer stays armed)
            scheduler.schedule(this::onTimer, Math.max(maxWaitNanos - quiet, 100_000));
            return;
        }
        drainAll();
    }

    private void drainAll() {
        // disarm first: a text added from now on arms a new timer, so none is left behind
        timerArmed.set(false);
        while (drainOne() > 0) {
            // keep going while texts wait
        }
    }

    /** Fails everything still waiting (node shutting down). */
    void failAll(Exception e) {
        Pending p;
        while ((p = queue.poll()) != null) {
            queued.decrementAndGet();
            p.listener().onFailure(e);
        }
    }
}

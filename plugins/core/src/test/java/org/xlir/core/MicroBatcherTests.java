package org.xlir.core;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MicroBatcherTests {

    private final ExecutorService pool = Executors.newFixedThreadPool(2);
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();

    @AfterEach
    void shutdown() {
        pool.shutdownNow();
        timer.shutdownNow();
    }

    private MicroBatcher.Scheduler scheduler() {
        return new MicroBatcher.Scheduler() {
            @Override
            public void execute(Runnable task) {
                pool.execute(task);
            }

            @Override
            public void schedule(Runnable task, long delayNanos) {
                timer.schedule(() -> pool.execute(task), delayNanos, TimeUnit.NANOSECONDS);
            }
        };
    }

    private static MicroBatcher.BatchRunner echo(List<Integer> sizes) {
        return batch -> {
            sizes.add(batch.size());
            for (MicroBatcher.Pending p : batch) {
                p.listener().onResponse(new Embedding(new float[] { Float.parseFloat(p.text()) }, false, null));
            }
        };
    }

    @Test
    void everyTextIsAnsweredOnceFromManyThreads() throws Exception {
        List<Integer> sizes = new CopyOnWriteArrayList<>();
        MicroBatcher batcher = new MicroBatcher("m", 16, TimeUnit.MILLISECONDS.toNanos(3), 100_000, scheduler(), echo(sizes));
        int threads = 8, perThread = 500;
        CountDownLatch done = new CountDownLatch(threads * perThread);
        ConcurrentHashMap<Integer, AtomicInteger> answers = new ConcurrentHashMap<>();
        ExecutorService submitters = Executors.newFixedThreadPool(threads);
        for (int t = 0; t < threads; t++) {
            int base = t * perThread;
            submitters.execute(() -> {
                for (int i = 0; i < perThread; i++) {
                    int id = base + i;
                    batcher.submit(InputType.PASSAGE, Integer.toString(id), Listener.of(e -> {
                        assertEquals(id, (int) e.vector()[0]);
                        answers.computeIfAbsent(id, k -> new AtomicInteger()).incrementAndGet();
                        done.countDown();
                    }, e -> { throw new AssertionError(e); }));
                }
            });
        }
        assertTrue(done.await(30, TimeUnit.SECONDS), "not every text was answered");
        submitters.shutdown();
        assertEquals(threads * perThread, answers.size());
        answers.values().forEach(c -> assertEquals(1, c.get()));
        assertTrue(sizes.stream().allMatch(s -> s <= 16));
        assertTrue(sizes.stream().mapToInt(Integer::intValue).sum() == threads * perThread);
        assertTrue(sizes.size() < threads * perThread / 2, "texts were not batched: " + sizes.size() + " batches");
        assertEquals(0, batcher.queued());
    }

    @Test
    void aLoneTextIsEncodedAfterTheWait() throws Exception {
        List<Integer> sizes = new CopyOnWriteArrayList<>();
        MicroBatcher batcher = new MicroBatcher("m", 64, TimeUnit.MILLISECONDS.toNanos(2), 100, scheduler(), echo(sizes));
        CountDownLatch done = new CountDownLatch(1);
        batcher.submit(InputType.QUERY, "7", Listener.of(e -> done.countDown(), e -> {}));
        assertTrue(done.await(5, TimeUnit.SECONDS));
        assertEquals(List.of(1), sizes);
    }

    @Test
    void aFailingBatchFailsEachOfItsTexts() throws Exception {
        MicroBatcher batcher = new MicroBatcher("m", 4, TimeUnit.MILLISECONDS.toNanos(1), 100, scheduler(), batch -> {
            throw new IllegalStateException("boom");
        });
        CountDownLatch failed = new CountDownLatch(10);
        for (int i = 0; i < 10; i++) {
            batcher.submit(InputType.PASSAGE, "x", Listener.of(e -> {}, e -> failed.countDown()));
        }
        assertTrue(failed.await(5, TimeUnit.SECONDS));
    }

    @Test
    void overTheQueueLimitTextsAreRejected() {
        MicroBatcher.Scheduler never = new MicroBatcher.Scheduler() {
            @Override
            public void execute(Runnable task) {}

            @Override
            public void schedule(Runnable task, long delayNanos) {}
        };
        MicroBatcher batcher = new MicroBatcher("m", 1000, TimeUnit.MILLISECONDS.toNanos(5), 2, never, batch -> {});
        List<Exception> errors = new CopyOnWriteArrayList<>();
        for (int i = 0; i < 3; i++) {
            batcher.submit(InputType.PASSAGE, "x", Listener.of(e -> {}, errors::add));
        }
        assertEquals(1, errors.size());
        assertInstanceOf(OverloadedException.class, errors.get(0));
    }
}

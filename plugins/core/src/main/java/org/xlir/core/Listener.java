package org.xlir.core;

import java.util.function.Function;

/**
 * The result callback of core's asynchronous work. Engine-neutral on purpose: each adapter turns
 * its engine's {@code ActionListener} into one of these (same two methods), so core needs no
 * engine import.
 */
public interface Listener<T> {

    void onResponse(T value);

    void onFailure(Exception e);

    /** A listener from two callbacks (an engine's {@code ActionListener} as {@code of(l::onResponse, l::onFailure)}). */
    static <T> Listener<T> of(java.util.function.Consumer<T> onResponse, java.util.function.Consumer<Exception> onFailure) {
        return new Listener<>() {
            @Override
            public void onResponse(T value) {
                onResponse.accept(value);
            }

            @Override
            public void onFailure(Exception e) {
                onFailure.accept(e);
            }
        };
    }

    /** This listener, fed with {@code fn} of a value; a throwing {@code fn} becomes a failure. */
    default <U> Listener<U> map(CheckedFunction<U, T> fn) {
        return of(value -> {
            T mapped;
            try {
                mapped = fn.apply(value);
            } catch (Exception e) {
                onFailure(e);
                return;
            }
            onResponse(mapped);
        }, this::onFailure);
    }

    /** A listener whose failures pass through {@code translate} first (engine exception types). */
    default Listener<T> translatingFailures(Function<Exception, Exception> translate) {
        return of(this::onResponse, e -> onFailure(translate.apply(e)));
    }

    @FunctionalInterface
    interface CheckedFunction<A, B> {
        B apply(A a) throws Exception;
    }
}

package org.xlir.core;

/** Too many texts wait for one model: adapters answer it as their engine's rejection (429, retry). */
public final class OverloadedException extends RuntimeException {

    public OverloadedException(String message) {
        super(message);
    }
}

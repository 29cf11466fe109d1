import Logging

extension Logger {
    /// This logger with `component` in every line's metadata, so a line says which part of the
    /// flow wrote it (ingest, partitions, commit, kpis, snapshots, alert-delivery,
    /// reconciliation, rebuild) and a log pipeline can filter on it.
    package func component(_ name: String) -> Logger {
        var logger = self
        logger[metadataKey: "component"] = "\(name)"
        return logger
    }
}

import Foundation
import SegmenterCore
import SegmenterStore
import ServiceConfig

/// What `validate` says about metrics against the state directory (SPEC §4b): a metric the
/// state does not have, or has with another definition, starts empty unless rebuilt.
public enum MetricDefinitionCheck {
    public static func notes(_ config: SegmenterConfig) throws -> [String] {
        guard !config.catalog.metrics.isEmpty,
              let reader = try? StateReader(directory: config.stateDirectory) else { return [] }
        return try reader.metricDefinitionChanges(config.catalog.metrics).map(\.description)
    }
}

import ArgumentParser
import Foundation
import Logging
import SegmenterService
import ServiceConfig
import ServiceRuntime

/// `--config` shared by commands that read the service configuration.
struct ConfigOption: ParsableArguments {
    @Option(name: .shortAndLong, help: "Path of the YAML configuration file.")
    var config: String = "config/segmenter.yaml"

    func load() throws -> SegmenterConfig {
        try SegmenterConfig.load(path: config)
    }
}

enum LogFormat: String, ExpressibleByArgument { case text, json }

/// Logging to stderr, so stdout stays clean for data (`export features`): human-readable by
/// default, JSON lines with `--log-format json`.
func makeLogger(_ label: String = "segmenter", format: LogFormat = .text) -> Logger {
    switch format {
    case .text: LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
    case .json: LoggingSystem.bootstrap { JSONLogHandler(label: $0) }
    }
    return Logger(label: label)
}

/// Signals received so far; written only by the C signal handler below.
nonisolated(unsafe) private var signalsReceived: Int32 = 0

/// Sets `stop` on the first SIGINT/SIGTERM; the second one exits at once.
func installSignalHandlers(_ stop: StopSignal) -> [Thread] { installSignalHandlers { stop.stop() } }

/// Calls `onFirst` on the first SIGINT/SIGTERM; the second one exits at once.
///
/// A plain C handler, not a dispatch source: libdispatch on Linux only sees a signal that every
/// thread blocks, and librdkafka's threads do not, so a dispatch source can miss SIGTERM. A
/// parent may also start us with the signals blocked (some process launchers do): unblock them.
func installSignalHandlers(_ onFirst: @escaping @Sendable () -> Void) -> [Thread] {
    var mask = sigset_t()
    sigemptyset(&mask)
    sigaddset(&mask, SIGINT)
    sigaddset(&mask, SIGTERM)
    pthread_sigmask(SIG_UNBLOCK, &mask, nil)
    for number in [SIGINT, SIGTERM] {
        signal(number) { _ in
            signalsReceived += 1
            if signalsReceived >= 2 { _exit(130) }
        }
    }
    let watcher = Thread {
        while signalsReceived == 0 { Thread.sleep(forTimeInterval: 0.05) }
        FileHandle.standardError.write(Data("\nstopping after the current batch (signal again to force)\n".utf8))
        onFirst()
    }
    watcher.start()
    return [watcher]
}

/// Prints to stdout immediately (stdout is block-buffered when piped).
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

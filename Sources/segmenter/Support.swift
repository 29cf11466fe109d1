import ArgumentParser
import Foundation
import Logging
import SegmenterService

/// `--config` shared by commands that read the service configuration.
struct ConfigOption: ParsableArguments {
    @Option(name: .shortAndLong, help: "Path of the YAML configuration file.")
    var config: String = "config/segmenter.yaml"

    func load() throws -> SegmenterConfig {
        try SegmenterConfig.load(path: config)
    }
}

enum LogFormat: String, ExpressibleByArgument { case text, json }

/// Logging to stderr, so stdout stays clean for data (`export features`).
func makeLogger(_ label: String = "segmenter") -> Logger {
    LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
    return Logger(label: label)
}

/// Sets `stop` on the first SIGINT/SIGTERM; the second one exits at once.
func installSignalHandlers(_ stop: StopSignal) -> [DispatchSourceSignal] {
    [SIGINT, SIGTERM].map { number in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            if stop.isStopped { exit(130) }
            FileHandle.standardError.write(Data("\nstopping after the current batch (signal again to force)\n".utf8))
            stop.stop()
        }
        source.resume()
        return source
    }
}

/// Prints to stdout immediately (stdout is block-buffered when piped).
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

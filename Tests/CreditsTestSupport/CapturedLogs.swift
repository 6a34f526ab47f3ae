import Logging
import Synchronization

/// Log lines kept in memory, to prove what is logged (and what never is, a token say): each line
/// is the level, the message and the metadata.
public final class CapturedLogs: Sendable {
    public let lines = Mutex<[String]>([])

    public init() {}

    struct Handler: LogHandler {
        let sink: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            sink.lines.withLock { $0.append("\(event.level) \(event.message) \(all)") }
        }
    }

    public var logger: Logger {
        var l = Logger(label: "test") { _ in Handler(sink: self) }
        l.logLevel = .trace
        return l
    }

    /// The lines that contain every one of `parts`.
    public func matching(_ parts: String...) -> [String] {
        lines.withLock { $0.filter { line in parts.allSatisfy { line.contains($0) } } }
    }
}

import Foundation

/// A temporary directory removed by `remove()`.
public struct TempDir: Sendable {
    public let path: String

    public init() throws {
        path = NSTemporaryDirectory() + "credits-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

import CreditsCore
import CreditsServer
import CreditsStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

let serviceKey = "test-service-key"
let adminKey = "test-admin-key"

/// A decoded JSON response.
struct Reply: Sendable {
    var status: Int
    var headers: HTTPFields
    var text: String

    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    subscript(_ key: String) -> Any? { json[key] }
    func int(_ key: String) -> Int64? { (json[key] as? NSNumber)?.int64Value }
    func string(_ key: String) -> String? { json[key] as? String }
    var replayed: Bool { headers[HTTPField.Name("Idempotent-Replayed")!] == "true" }
}

extension TestClientProtocol {
    /// Sends a request with the given key (nil: none) and an optional raw body.
    func call(
        _ method: HTTPRequest.Method, _ uri: String, key: String? = serviceKey, body: String? = nil,
        idempotencyKey: String? = nil
    ) async throws -> Reply {
        try await call(method, uri, key: key, bytes: body.map { Array($0.utf8) }, idempotencyKey: idempotencyKey)
    }

    /// The same with a body of any bytes (another encoding than UTF-8, say).
    func call(
        _ method: HTTPRequest.Method, _ uri: String, key: String? = serviceKey, bytes: [UInt8]?, idempotencyKey: String? = nil
    ) async throws -> Reply {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let key { headers[.authorization] = "Bearer \(key)" }
        if let idempotencyKey { headers[HTTPField.Name("Idempotency-Key")!] = idempotencyKey }
        return try await execute(uri: uri, method: method, headers: headers, body: bytes.map { ByteBuffer(bytes: $0) }) { r in
            Reply(status: Int(r.status.code), headers: r.headers, text: String(buffer: r.body))
        }
    }
}

/// Runs `body` against the real router over a fresh SQLite store, both on `clock`.
func withApp(clock: WallClock = .system, _ body: @Sendable (any TestClientProtocol, SQLiteStore) async throws -> Void) async throws {
    let dir = NSTemporaryDirectory() + "credits-http-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let store = try SQLiteStore(path: dir + "/ledger.sqlite", clock: clock)
    let app = buildApplication(
        store: store, configuration: ServerConfiguration(serviceKey: serviceKey, adminKey: adminKey, clock: clock),
        logger: .init(label: "test"))
    do {
        try await app.test(.router) { client in try await body(client, store) }
    } catch {
        try? await store.close()
        throw error
    }
    try await store.close()
}

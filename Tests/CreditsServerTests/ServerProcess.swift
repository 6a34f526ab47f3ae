import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The built `credits` executable: $CREDITS_BIN, or next to this test bundle in the build folder.
func creditsExecutable() throws -> String {
    if let path = ProcessInfo.processInfo.environment["CREDITS_BIN"], FileManager.default.isExecutableFile(atPath: path) {
        return path
    }
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("credits").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    struct Missing: Error, CustomStringConvertible {
        var description: String { "the credits executable is not built: run `swift build` first or set CREDITS_BIN" }
    }
    throw Missing()
}

/// Runs `credits ARGS` to completion; returns its exit code and output. The wait happens on a
/// thread of its own: blocking one of the concurrency pool's threads (two on a two-core machine)
/// starved in-process fakes such as FakeLotus, whose handlers need the pool to answer the child.
func runCredits(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try runCreditsBlocking(arguments, environment: environment) })
        }
    }
}

private func runCreditsBlocking(_ arguments: [String], environment: [String: String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try creditsExecutable())
    process.arguments = arguments
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A port that was free a moment ago, on 127.0.0.1.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard bound else { throw CocoaError(.fileNoSuchFile) }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A TCP connection to 127.0.0.1 that sends nothing.
struct SilentConnection: ~Copyable {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else {
            close(fd)
            throw CocoaError(.fileReadUnknown)
        }
    }

    /// Whether the server has closed it (end of stream or reset), without waiting.
    var closedByPeer: Bool {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
    }

    deinit { close(fd) }
}

/// A real `credits serve` child process on a free port.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let port: Int
    let logFile: String

    /// `softOpenFiles` starts it through a shell that lowers its soft limit on open files first.
    init(database: String, logFile: String, environment: [String: String] = [:], arguments: [String] = [],
         softOpenFiles: Int? = nil) throws {
        port = try freePort()
        self.logFile = logFile
        let serve = [try creditsExecutable(), "serve", "--port", String(port), "--database", database] + arguments
        if let softOpenFiles {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -S -n \(softOpenFiles) && exec \"$@\"", "sh"] + serve
        } else {
            process.executableURL = URL(fileURLWithPath: serve[0])
            process.arguments = Array(serve.dropFirst())
        }
        var env = ProcessInfo.processInfo.environment
        env["CREDITS_API_KEY"] = serviceKey
        env["CREDITS_ADMIN_KEY"] = adminKey
        env.merge(environment) { $1 }
        process.environment = env
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    /// Waits until /healthz answers: at most 90 s, a bound on a process that never comes up, not
    /// a measure of speed (a debug build starting beside the whole suite on two cores can take
    /// tens of seconds). When it does not come up, the error says whether the process exited
    /// and ends with its log.
    func waitUntilReady() async throws {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .seconds(Self.readySeconds) {
            if !process.isRunning { break }
            if let r = try? await HTTP.call(port: port, .get, "/healthz", key: nil), r.status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw NotReady(port: port, seconds: Self.readySeconds, exitStatus: process.isRunning ? nil : process.terminationStatus,
                       logTail: String((try? String(contentsOfFile: logFile, encoding: .utf8))?.suffix(2_000) ?? "(no log)"))
    }

    static let readySeconds = 90

    struct NotReady: Error, CustomStringConvertible {
        var port: Int
        var seconds: Int
        var exitStatus: Int32?
        var logTail: String
        var description: String {
            let state = exitStatus.map { "exited with status \($0)" } ?? "still running after \(seconds) s"
            return "credits serve on port \(port) never answered /healthz: \(state); its log ends:\n\(logTail)"
        }
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// How long a child may take to stop after SIGTERM (its drain is capped at 10 s) before the
    /// test records it as hung and kills it, rather than hanging the suite.
    static let stopLimit: Duration = .seconds(60)

    /// Blocks its thread until the child has exited: for `defer` only (see `stopAndWait`).
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let limit = ContinuousClock.now + Self.stopLimit
        while process.isRunning, ContinuousClock.now < limit { usleep(20_000) }
        killIfHung()
    }

    /// Stops the child and waits for it without holding a concurrency pool thread, so that an
    /// in-process fake the child still calls while it drains can answer.
    func stopAndWait() async {
        guard process.isRunning else { return }
        process.terminate()
        let limit = ContinuousClock.now + Self.stopLimit
        while process.isRunning, ContinuousClock.now < limit { try? await Task.sleep(for: .milliseconds(20)) }
        killIfHung()
    }

    private func killIfHung() {
        guard process.isRunning else { return }
        Issue.record("credits serve did not stop within \(Self.stopLimit) of SIGTERM; killed")
        kill9()
    }
}

/// One-off and persistent HTTP calls to a live server.
enum HTTP {
    static func call(
        port: Int, _ method: HTTPRequest.Method, _ uri: String, key: String? = serviceKey, body: String? = nil,
        idempotencyKey: String? = nil
    ) async throws -> Reply {
        try await TestClient.withClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(10))) { client in
            try await send(client, method, uri, key: key, body: body, idempotencyKey: idempotencyKey)
        }
    }

    /// A POST with exactly these headers (webhooks sign instead of using a key).
    static func post(port: Int, _ uri: String, body: String, headers: HTTPFields) async throws -> Reply {
        try await TestClient.withClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(10))) { client in
            let response = try await client.execute(.init(uri, method: .post, authority: "127.0.0.1", headers: headers, body: ByteBuffer(string: body)))
            return Reply(status: Int(response.status.code), headers: response.headers, text: response.body.map { String(buffer: $0) } ?? "")
        }
    }

    static func send(
        _ client: TestClient, _ method: HTTPRequest.Method, _ uri: String, key: String? = serviceKey, body: String? = nil,
        idempotencyKey: String? = nil
    ) async throws -> Reply {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let key { headers[.authorization] = "Bearer \(key)" }
        if let idempotencyKey { headers[HTTPField.Name("Idempotency-Key")!] = idempotencyKey }
        let response = try await client.execute(.init(uri, method: method, authority: "127.0.0.1", headers: headers, body: body.map { ByteBuffer(string: $0) }))
        return Reply(status: Int(response.status.code), headers: response.headers, text: response.body.map { String(buffer: $0) } ?? "")
    }
}

/// A spend a server answered with 201.
struct Ack: Sendable {
    var user: String
    var upload: String
    var credits: Int64
    var transactionId: String
}

/// `clients` connections send spends (round-robin over `ports` and `users`) until `kill` has
/// been called after `ackedBeforeKill` acknowledgements (or 2 s) and every client has seen its
/// server go away or finished. Returns every acknowledged spend.
func spendLoad(
    ports: [Int], users: [String], clients: Int, ackedBeforeKill: Int, kill: @escaping @Sendable () -> Void
) async throws -> [Ack] {
    let acked = Locked<[Ack]>([])
    let killed = Locked(false)
    await withTaskGroup(of: Void.self) { group in
        for c in 0..<clients {
            group.addTask {
                let client = TestClient(host: "127.0.0.1", port: ports[c % ports.count], configuration: .init(timeout: .seconds(10)))
                client.connect()
                defer { Task { try? await client.shutdown() } }
                var n = 0
                // After the kill, survivors' clients send a little more, then stop.
                var afterKill = 0
                while n < 100_000, afterKill < 50 {
                    let user = users[(c + n) % users.count]
                    let upload = "load_c\(c)_\(n)"
                    let credits = Int64(1 + n % 7)
                    guard let r = try? await HTTP.send(client, .post, "/api/credits/spend",
                        body: #"{"userId":"\#(user)","credits":\#(credits),"fileUploadId":"\#(upload)"}"#)
                    else { return }  // this client's server is gone
                    if r.status == 201, let txn = r.string("transactionId") {
                        acked.withLock { $0.append(Ack(user: user, upload: upload, credits: credits, transactionId: txn)) }
                    }
                    if killed.withLock({ $0 }) { afterKill += 1 }
                    n += 1
                }
            }
        }
        group.addTask {
            for _ in 0..<200 {
                if acked.withLock({ $0.count }) >= ackedBeforeKill { break }
                try? await Task.sleep(for: .milliseconds(10))
            }
            kill()
            killed.withLock { $0 = true }
        }
    }
    return acked.withLock { $0 }
}

/// Sends every acknowledged spend again to the server on `port`: each must replay (201, replayed)
/// with the transaction id it was first acknowledged with, or an acknowledged spend was lost.
func expectAcknowledgedSpendsReplay(_ acked: [Ack], port: Int) async throws {
    try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
        for ack in acked {
            let r = try await HTTP.send(client, .post, "/api/credits/spend",
                body: #"{"userId":"\#(ack.user)","credits":\#(ack.credits),"fileUploadId":"\#(ack.upload)"}"#)
            #expect(r.status == 201 && r.replayed, "acknowledged spend \(ack.upload) was lost: \(r.text)")
            #expect(r.string("transactionId") == ack.transactionId)
        }
    }
}

/// A value shared between tasks behind a lock.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}


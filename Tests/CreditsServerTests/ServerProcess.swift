import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
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

/// Runs `credits ARGS` to completion; returns its exit code and output.
func runCredits(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try creditsExecutable())
    process.arguments = arguments
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

/// A real `credits serve` child process on a free port.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let port: Int

    init(database: String, logFile: String) throws {
        port = try freePort()
        process.executableURL = URL(fileURLWithPath: try creditsExecutable())
        process.arguments = ["serve", "--port", String(port), "--database", database]
        var env = ProcessInfo.processInfo.environment
        env["CREDITS_API_KEY"] = serviceKey
        env["CREDITS_ADMIN_KEY"] = adminKey
        process.environment = env
        FileManager.default.createFile(atPath: logFile, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    /// Waits until /healthz answers (at most ~30 s).
    func waitUntilReady() async throws {
        for _ in 0..<300 {
            if !process.isRunning { break }
            if let r = try? await HTTP.call(port: port, .get, "/healthz", key: nil), r.status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        struct NotReady: Error {}
        throw NotReady()
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}

/// One-off and persistent HTTP calls to a live server.
enum HTTP {
    static func call(
        port: Int, _ method: HTTPRequest.Method, _ uri: String, key: String? = serviceKey, body: String? = nil
    ) async throws -> Reply {
        try await TestClient.withClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(10))) { client in
            try await send(client, method, uri, key: key, body: body)
        }
    }

    static func send(
        _ client: TestClient, _ method: HTTPRequest.Method, _ uri: String, key: String? = serviceKey, body: String? = nil
    ) async throws -> Reply {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let key { headers[.authorization] = "Bearer \(key)" }
        let response = try await client.execute(.init(uri, method: method, authority: "127.0.0.1", headers: headers, body: body.map { ByteBuffer(string: $0) }))
        return Reply(status: Int(response.status.code), headers: response.headers, text: response.body.map { String(buffer: $0) } ?? "")
    }
}

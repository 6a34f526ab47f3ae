import CreditsStore
import Foundation
import Logging
import PostgresNIO

/// The throwaway cluster `scripts/test` starts: its URL comes in CREDITS_TEST_POSTGRES_URL.
public enum PostgresTestDatabase {
    public static var url: String? {
        ProcessInfo.processInfo.environment["CREDITS_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Creates an empty schema and returns a URL that puts the store's tables in it. Notes the run
    /// in CREDITS_PG_MARKER, which `scripts/test` checks.
    public static func freshSchemaURL() async throws -> String {
        guard let url else { throw CancellationError() }
        let schema = freshName()
        try await run("CREATE SCHEMA \(schema)")
        note(schema)
        return url + (url.contains("?") ? "&" : "?") + "search_path=\(schema)"
    }

    /// Creates an empty database and returns its name and URL: for a test that must tell its own
    /// connections from other tests' (`pg_stat_activity.datname`).
    public static func freshDatabase() async throws -> (name: String, url: String) {
        guard let url, var parts = URLComponents(string: url) else { throw CancellationError() }
        let name = freshName()
        try await run("CREATE DATABASE \(name)")
        note(name)
        parts.path = "/" + name
        return (name, parts.string!)
    }

    /// A connection of its own to the test cluster (or to `database`, a `freshDatabase()` URL),
    /// outside any pool.
    public static func connect(id: Int = 1, database: String? = nil) async throws -> PostgresConnection {
        guard let url = database ?? url, let parts = URLComponents(string: url) else { throw CancellationError() }
        return try await PostgresConnection.connect(
            configuration: .init(host: parts.host!, port: parts.port ?? 5432, username: parts.user ?? "postgres",
                                 password: parts.password, database: String(parts.path.dropFirst()), tls: .disable),
            id: id, logger: Logger(label: "test"))
    }

    private static func freshName() -> String {
        "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

    private static func run(_ sql: String) async throws {
        let connection = try await connect()
        do {
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "test"))
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }

    /// Notes a store of the run in CREDITS_PG_MARKER, which `scripts/test` checks.
    private static func note(_ name: String) {
        guard let marker = ProcessInfo.processInfo.environment["CREDITS_PG_MARKER"] else { return }
        // O_APPEND: suites run in parallel, and a seek-then-write could overwrite a line.
        let fd = open(marker, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        if fd >= 0 {
            let line = Array("\(name)\n".utf8)
            _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
    }
}


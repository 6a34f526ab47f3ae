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
        let schema = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let parts = URLComponents(string: url)!
        var config = PostgresClient.Configuration(
            host: parts.host!, port: parts.port ?? 5432, username: parts.user ?? "postgres", password: parts.password,
            database: String(parts.path.dropFirst()), tls: .disable)
        config.options.maximumConnections = 1
        let client = PostgresClient(configuration: config)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await client.run() }
            try await client.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA \(schema)"))
            group.cancelAll()
        }
        if let marker = ProcessInfo.processInfo.environment["CREDITS_PG_MARKER"] {
            // O_APPEND: suites run in parallel, and a seek-then-write could overwrite a line.
            let fd = open(marker, O_WRONLY | O_APPEND | O_CREAT, 0o644)
            if fd >= 0 {
                let line = Array("\(schema)\n".utf8)
                _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                close(fd)
            }
        }
        return url + (url.contains("?") ? "&" : "?") + "search_path=\(schema)"
    }
}


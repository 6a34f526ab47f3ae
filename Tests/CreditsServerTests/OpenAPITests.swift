import CreditsServer
import CreditsStore
import CreditsTestSupport
import Foundation
import HummingbirdTesting
import Testing

/// The OpenAPI description stays true: every route the server registers is described, and
/// nothing else is. (The test command also validates it and fuzzes a live server with it.)
@Suite struct OpenAPITests {
    /// "METHOD /path" pairs of the spec's `paths:` section, read line by line (two-space YAML).
    static func specOperations(_ yaml: String) -> Set<String> {
        var out = Set<String>()
        var path: String?
        var inPaths = false
        for line in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "paths:" { inPaths = true; continue }
            if inPaths, !line.hasPrefix(" "), !line.isEmpty { inPaths = false }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") {
                path = String(line.dropFirst(2).dropLast())
            } else if let path, line.hasPrefix("    "), !line.hasPrefix("     "),
                      let method = ["get", "post", "put", "delete", "patch"].first(where: { line == "    \($0):" }) {
                out.insert("\(method.uppercased()) \(path)")
            }
        }
        return out
    }

    @Test func specDescribesExactlyTheRegisteredRoutes() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let store = try SQLiteStore(path: dir.path + "/ledger.sqlite")
        let router = buildRouter(
            store: store, configuration: ServerConfiguration(serviceKey: serviceKey, adminKey: adminKey, metrics: .init()))
        let registered = Set(router.routes.filter { $0.method != .head }.map { route -> String in
            // Hummingbird writes parameters as ":name" or "{name}"; the spec as "{name}".
            let path = "\(route.path)".split(separator: "/").map { part in
                part.hasPrefix(":") ? "{\(part.dropFirst())}" : String(part)
            }.joined(separator: "/")
            return "\(route.method) /\(path)".replacingOccurrences(of: "//", with: "/")
        })
        let described = Self.specOperations(OpenAPISpecAccess.yaml)
        #expect(described.count >= 15)
        #expect(registered.subtracting(described).isEmpty, "routes missing from the spec: \(registered.subtracting(described).sorted())")
        #expect(described.subtracting(registered).isEmpty, "spec paths the server lacks: \(described.subtracting(registered).sorted())")
    }

    @Test func specIsServedWithoutAKey() async throws {
        try await withApp { client, _ in
            let r = try await client.call(.get, "/openapi.yaml", key: nil)
            #expect(r.status == 200 && r.text.hasPrefix("openapi: 3.1.0"))
        }
    }
}

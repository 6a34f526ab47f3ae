import CreditsCore
import CreditsStore
import CreditsTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

/// `GET /admin`: the operators' page.
@Suite struct DashboardTests {
    static let basicAdmin = "Basic " + Data("ops:\(adminKey)".utf8).base64EncodedString()

    @Test func dashboardNeedsTheAdminKeyAndWorksOffline() async throws {
        try await withApp { client, _ in
            _ = try await client.call(.post, "/api/credits/purchase",
                body: #"{"userId":"d1","package":"pro","paymentMethod":"stripe","paymentId":"pi_dash"}"#)
            let anonymous = try await client.call(.get, "/admin", key: nil)
            #expect(anonymous.status == 401)
            #expect(anonymous.headers[.wwwAuthenticate]?.hasPrefix("Basic ") == true)
            #expect(try await client.call(.get, "/admin", key: serviceKey).status == 403)
            let page = try await client.execute(uri: "/admin", method: .get, headers: [.authorization: Self.basicAdmin]) { r in
                (Int(r.status.code), r.headers[.contentType] ?? "", String(buffer: r.body))
            }
            #expect(page.0 == 200)
            #expect(page.1.hasPrefix("text/html"))
            #expect(page.2.contains("Revenue per day") && page.2.contains("<svg") && page.2.contains("$60.00"))
            // Nothing from elsewhere: no script, no external stylesheet, font or image.
            #expect(!page.2.contains("<script") && !page.2.contains("src=") && !page.2.contains("http://")
                    && !page.2.contains("https://") && !page.2.contains("@import"))
            let wrong = "Basic " + Data("ops:nope".utf8).base64EncodedString()
            let refused = try await client.execute(uri: "/admin", method: .get, headers: [.authorization: wrong]) { Int($0.status.code) }
            #expect(refused == 401)
        }
    }

    /// Renders the page of a real server in headless Chromium when it is installed: not blank,
    /// the charts there.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium"), "Chromium is not installed"))
    func dashboardRendersInHeadlessChromium() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try ServerProcess(database: dir.path + "/ledger.sqlite", logFile: dir.path + "/serve.log")
        defer { server.stop() }
        try await server.waitUntilReady()
        _ = try await HTTP.call(port: server.port, .post, "/api/credits/purchase",
            body: #"{"userId":"c1","package":"creator","paymentMethod":"paypal","paymentId":"PAY-dash"}"#)
        let url = "http://ops:\(adminKey)@127.0.0.1:\(server.port)/admin"
        let common = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=\(dir.path)/chromium"]
        let dom = try run("/usr/bin/chromium", common + ["--dump-dom", url])
        #expect(dom.status == 0)
        #expect(dom.output.contains("StreamVault Credits") && dom.output.contains("<svg"))
        #expect(!dom.output.contains("Uncaught"))
        let png = dir.path + "/admin.png"
        let shot = try run("/usr/bin/chromium", common + ["--window-size=1280,1200", "--screenshot=\(png)", url])
        #expect(shot.status == 0)
        let size = (try FileManager.default.attributesOfItem(atPath: png)[.size] as? NSNumber)?.intValue ?? 0
        #expect(size > 20_000, "the screenshot is \(size) bytes: a blank page?")
    }

    private func run(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

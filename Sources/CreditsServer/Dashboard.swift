import CreditsCore
import CreditsStore
import CreditsWorker
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The operators' page: figures and charts rendered on the server as HTML with inline SVG. No
/// script, no font or style from elsewhere, so it works offline; one column on a phone.
enum Dashboard {
    struct Input {
        var days: Int
        var stats: PlatformStats
        var gas: GasStats?
        var daily: [DailyTotals]
        var gasTransactions: [GasTransaction]
        var queued: Int?
        var inFlight: Int?
        var retrying: Int?
        var firstDay: Int64
    }

    static func render(_ i: Input) -> String {
        let dayIndex = (0..<Int64(i.days)).map { i.firstDay + $0 }
        let byDay = Dictionary(uniqueKeysWithValues: i.daily.map { ($0.day, $0) })
        let labels = dayIndex.map(dayLabel)
        let revenue = dayIndex.map { byDay[$0]?.revenueCents ?? 0 }
        let sold = dayIndex.map { byDay[$0]?.creditsSold ?? 0 }
        let spent = dayIndex.map { byDay[$0]?.creditsSpent ?? 0 }
        let confirmed = i.gasTransactions.filter { $0.status == .confirmed }
        var individual = [Int64: Int128]()
        var actual = [Int64: Int128]()
        for tx in confirmed {
            let day = tx.createdAtMs / 86_400_000
            individual[day, default: 0] += tx.individualCost
            actual[day, default: 0] += tx.totalCost
        }
        // Charts in microFIL keep bar heights in Int64.
        let individualSeries = dayIndex.map { Int64((individual[$0] ?? 0) / 1_000_000_000_000) }
        let actualSeries = dayIndex.map { Int64((actual[$0] ?? 0) / 1_000_000_000_000) }
        var sizes = [Int64](repeating: 0, count: 20)
        for tx in confirmed { sizes[min(19, max(0, tx.uploadIds.count - 1))] += 1 }

        let s = i.stats
        let tiles: [(String, String)] = [
            ("Revenue", "$" + money(s.totalRevenueCents)),
            ("Net revenue", "$" + money(s.netRevenueCents)),
            ("Gross margin", "$" + money(s.grossMarginCents) + " (" + percent(s.grossMarginPPM) + ")"),
            ("Credits sold / spent", "\(s.creditsSold) / \(s.creditsSpent)"),
            ("Credits outstanding", "\(s.creditsOutstanding)"),
            ("Active / paying users", "\(s.activeUsers) / \(s.payingUsers)"),
            ("Gas spent", "$" + money(s.gasSpentUsdCents)),
            ("Batch success rate", i.gas.map { percent($0.successRatePPM) } ?? "n/a"),
            ("Batching savings", i.gas.map { percent($0.batchingSavingsPPM) } ?? "n/a"),
            ("Queue now", i.queued.map { "\($0) waiting, \(i.inFlight ?? 0) in flight, \(i.retrying ?? 0) retrying" } ?? "worker not running"),
        ]
        var html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>StreamVault Credits: operator dashboard</title>
            <style>
            body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:16px;background:#f6f7f9;color:#1d2330}
            h1{font-size:1.4rem;margin:0 0 4px} p.sub{margin:0 0 16px;color:#5b6475}
            .tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:10px;margin-bottom:16px}
            .tile{background:#fff;border-radius:8px;padding:12px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
            .tile b{display:block;font-size:.8rem;color:#5b6475;font-weight:600;margin-bottom:4px}
            .tile span{font-size:1.15rem}
            .charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:12px}
            figure{margin:0;background:#fff;border-radius:8px;padding:12px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
            figcaption{font-weight:600;margin-bottom:6px} svg{width:100%;height:auto}
            .legend span{display:inline-block;margin-right:12px;font-size:.8rem}
            .sw{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
            </style></head><body>
            <h1>StreamVault Credits</h1>
            <p class="sub">Last \(i.days) days. Money in USD.</p>
            <div class="tiles">
            """
        for (name, value) in tiles {
            html += "<div class=\"tile\"><b>\(escape(name))</b><span>\(escape(value))</span></div>\n"
        }
        html += "</div><div class=\"charts\">\n"
        html += chart("Revenue per day (USD)", labels: labels, series: [("Revenue", "#2f6fde", revenue)], format: money)
        html += chart("Credits sold vs spent per day", labels: labels,
                      series: [("Sold", "#2f9e6f", sold), ("Spent", "#d9822b", spent)], format: { "\($0)" })
        html += chart("Gas per day: individual vs actual (µFIL)", labels: labels,
                      series: [("Individual", "#9aa3b5", individualSeries), ("Actual", "#2f6fde", actualSeries)], format: { "\($0)" })
        html += chart("Batch sizes (messages)", labels: (1...20).map { "\($0)" },
                      series: [("Messages", "#6a4fc2", sizes)], format: { "\($0)" })
        html += "</div></body></html>\n"
        return html
    }

    /// A bar chart with one group of bars per label.
    static func chart(_ title: String, labels: [String], series: [(String, String, [Int64])], format: (Int64) -> String) -> String {
        let width = 640.0
        let height = 220.0
        let left = 56.0
        let bottom = 24.0
        let maxValue = max(1, series.flatMap(\.2).max() ?? 1)
        let groupWidth = (width - left - 8) / Double(max(1, labels.count))
        let barWidth = max(1, groupWidth * 0.8 / Double(series.count))
        var svg = "<figure><figcaption>\(escape(title))</figcaption>"
        svg += "<svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(escape(title))\">"
        svg += "<line x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width - 4)\" y2=\"\(height - bottom)\" stroke=\"#c5cad3\"/>"
        svg += "<text x=\"\(left - 6)\" y=\"14\" font-size=\"11\" text-anchor=\"end\" fill=\"#5b6475\">\(escape(format(maxValue)))</text>"
        svg += "<text x=\"\(left - 6)\" y=\"\(height - bottom)\" font-size=\"11\" text-anchor=\"end\" fill=\"#5b6475\">0</text>"
        for (g, label) in labels.enumerated() {
            let x0 = left + Double(g) * groupWidth + groupWidth * 0.1
            for (k, (_, color, values)) in series.enumerated() {
                let v = g < values.count ? values[g] : 0
                let h = (height - bottom - 8) * Double(v) / Double(maxValue)
                svg += "<rect x=\"\(fmt(x0 + Double(k) * barWidth))\" y=\"\(fmt(height - bottom - h))\" width=\"\(fmt(barWidth))\" height=\"\(fmt(h))\" fill=\"\(color)\"><title>\(escape(label)): \(escape(format(v)))</title></rect>"
            }
            if labels.count <= 12 || g % max(1, labels.count / 8) == 0 {
                svg += "<text x=\"\(fmt(x0 + groupWidth * 0.4))\" y=\"\(height - 6)\" font-size=\"10\" text-anchor=\"middle\" fill=\"#5b6475\">\(escape(label))</text>"
            }
        }
        svg += "</svg><div class=\"legend\">"
        for (name, color, _) in series {
            svg += "<span><i class=\"sw\" style=\"background:\(color)\"></i>\(escape(name))</span>"
        }
        return svg + "</div></figure>\n"
    }

    static func money(_ cents: Int64) -> String { Decimal2.text(cents) }
    static func percent(_ ppm: Int64) -> String { Decimal2.text(ppm / 100) + "%" }
    static func fmt(_ x: Double) -> String { String(format: "%.1f", x) }

    static func dayLabel(_ day: Int64) -> String {
        let date = Date(timeIntervalSince1970: TimeInterval(day * 86_400))
        return date.formatted(.iso8601.month().day().dateSeparator(.dash))
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

/// `GET /admin`: the last 14 days.
func renderDashboard(manager: CreditManager, gas: FilecoinGasManager?, configuration: ServerConfiguration) async throws -> Response {
    let days = 14
    let now = configuration.clock.nowMs()
    let since = (now / 86_400_000 - Int64(days) + 1) * 86_400_000
    let rate = gas?.config.usdPerFil ?? DecimalRate.defaultUsdPerFil
    let stats = try await manager.getPlatformCreditStats(days: days, nowMs: now, usdPerFil: rate, fees: configuration.paymentFees)
    let daily = try await manager.store.dailyTotals(sinceMs: since)
    let txs = try await manager.store.gasTransactions(sinceMs: since, limit: 100_000)
    var input = Dashboard.Input(
        days: days, stats: stats, gas: txs.isEmpty ? nil : GasStats.compute(txs, usdPerFil: rate), daily: daily,
        gasTransactions: txs, firstDay: since / 86_400_000)
    if let gas {
        input.queued = await gas.queueLength
        input.inFlight = await gas.messagesInFlight
        input.retrying = await gas.retriesWaiting
    }
    let html = Dashboard.render(input)
    return Response(
        status: .ok,
        headers: [
            .contentType: "text/html; charset=utf-8",
            .contentSecurityPolicy: "default-src 'none'; style-src 'unsafe-inline'",
            .cacheControl: "no-store",
        ],
        body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
}

import Foundation

/// Finds a key given twice in one JSON object: `{"userId":"a", ..., "userId":"b"}`.
///
/// Foundation's decoder takes one of the two silently, and another reader of the same body (a
/// proxy, a log pipeline, the client's own signing or audit code) may take the other: the request
/// would mean one thing here and another there. A body that moves credits must mean one thing, so
/// such a body is refused. Keys are compared as the decoder compares them: unescaped
/// (`"user\u0049d"` is `userId`) and as Swift strings.
///
/// Run on a body the decoder has accepted, so the scan may assume valid JSON (UTF-8, as RFC 8259
/// requires between systems). It gives up (nil) past `depthMax` levels rather than recurse
/// without bound, and on a body in UTF-16 or UTF-32, which the decoder also reads.
enum JSONDuplicateKeys {
    static let depthMax = 64

    /// The path of the first key given twice, as `CreditsError` names fields (`userId`,
    /// `data.amount`, `items[1].id`); nil when every object's keys are distinct.
    static func first(in data: Data) -> String? {
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }  // a UTF-8 byte order mark
        var scanner = Scanner(bytes: bytes)
        return try? scanner.value(path: "", depth: 0)
    }

    private struct GaveUp: Error {}

    private struct Scanner {
        let bytes: [UInt8]
        var i = 0

        init(bytes: [UInt8]) {
            self.bytes = bytes
        }

        /// Scans one value; returns the path of a duplicate key inside it, if any.
        mutating func value(path: String, depth: Int) throws -> String? {
            guard depth < JSONDuplicateKeys.depthMax else { throw GaveUp() }
            skipSpace()
            guard i < bytes.count else { throw GaveUp() }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                var seen = Set<String>()
                skipSpace()
                if peek(UInt8(ascii: "}")) { i += 1; return nil }
                while true {
                    skipSpace()
                    let key = try string()
                    let keyPath = path.isEmpty ? key : "\(path).\(key)"
                    if !seen.insert(key).inserted { return keyPath }
                    skipSpace()
                    try expect(UInt8(ascii: ":"))
                    if let found = try value(path: keyPath, depth: depth + 1) { return found }
                    skipSpace()
                    if peek(UInt8(ascii: ",")) { i += 1; continue }
                    try expect(UInt8(ascii: "}"))
                    return nil
                }
            case UInt8(ascii: "["):
                i += 1
                skipSpace()
                if peek(UInt8(ascii: "]")) { i += 1; return nil }
                var index = 0
                while true {
                    if let found = try value(path: "\(path)[\(index)]", depth: depth + 1) { return found }
                    index += 1
                    skipSpace()
                    if peek(UInt8(ascii: ",")) { i += 1; continue }
                    try expect(UInt8(ascii: "]"))
                    return nil
                }
            case UInt8(ascii: "\""):
                _ = try string()
                return nil
            default:
                // A number, true, false or null: up to the next delimiter.
                while i < bytes.count, !Self.endsScalar(bytes[i]) { i += 1 }
                return nil
            }
        }

        static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

        static func endsScalar(_ b: UInt8) -> Bool {
            b == UInt8(ascii: ",") || b == UInt8(ascii: "}") || b == UInt8(ascii: "]") || isSpace(b)
        }

        /// A string at `i`, unescaped.
        mutating func string() throws -> String {
            try expect(UInt8(ascii: "\""))
            let start = i
            var escaped = false
            while i < bytes.count, bytes[i] != UInt8(ascii: "\"") {
                if bytes[i] == UInt8(ascii: "\\") { escaped = true; i += 1 }
                i += 1
            }
            guard i < bytes.count else { throw GaveUp() }
            let end = i
            i += 1
            if !escaped { return String(decoding: bytes[start..<end], as: UTF8.self) }
            // Let the decoder unescape it, so that keys compare as the decoder saw them.
            guard let text = try? JSONDecoder().decode(String.self, from: Data(bytes[(start - 1)...end])) else { throw GaveUp() }
            return text
        }

        mutating func skipSpace() {
            while i < bytes.count, Self.isSpace(bytes[i]) { i += 1 }
        }

        func peek(_ byte: UInt8) -> Bool { i < bytes.count && bytes[i] == byte }

        mutating func expect(_ byte: UInt8) throws {
            guard peek(byte) else { throw GaveUp() }
            i += 1
        }
    }
}

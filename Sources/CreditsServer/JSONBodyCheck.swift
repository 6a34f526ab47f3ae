import CreditsCore
import Foundation

/// The checks on an API body beyond what the decoder makes. Above all it refuses a body that
/// gives a key twice in one JSON object: `{"userId":"a", ..., "userId":"b"}`.
///
/// Foundation's decoder takes one of the two silently, and another reader of the same body (a
/// proxy, a log pipeline, the client's own signing or audit code) may take the other: the request
/// would mean one thing here and another there. A body that moves credits must mean one thing, so
/// such a body is refused. Keys are compared as the decoder compares them: unescaped
/// (`"user\u0049d"` is `userId`) and as Swift strings.
///
/// Run on a body the decoder has accepted. A body the scan cannot read through is refused too,
/// rather than let through unchecked: one in UTF-16 or UTF-32 (the decoder reads those; RFC 8259
/// asks for UTF-8 between systems), one nested deeper than `depthMax` (no request here nests
/// more than two), and one with a trailing comma (`{"a":1,}`, `[1,]`: the decoder takes them,
/// JSON does not allow them, and another reader may refuse them).
enum JSONBodyCheck {
    static let depthMax = 64

    /// Throws `VALIDATION_ERROR` naming the first key given twice, as `CreditsError` names fields
    /// (`userId`, `data.amount`, `items[1].id`), or naming `body` when the body cannot be read
    /// through.
    static func check(_ data: Data) throws(CreditsError) {
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }  // a UTF-8 byte order mark
        // JSON in UTF-8 holds no NUL byte (a control character in a string is escaped), and no
        // UTF-8 text starts with 0xFE or 0xFF (UTF-16's and UTF-32's byte order marks).
        if bytes.contains(0) || bytes.first == 0xFE || bytes.first == 0xFF {
            throw .validation("body", "must be JSON in UTF-8")
        }
        var scanner = Scanner(bytes: bytes)
        let found: String?
        do {
            found = try scanner.value(path: "", depth: 0)
        } catch .tooDeep {
            throw .validation("body", "nests objects and arrays more than \(depthMax) deep")
        } catch {
            throw .validation("body", "is not valid JSON")
        }
        if let found { throw .validation(found, "is given more than once; a body must name each field once") }
    }

    private enum GaveUp: Error {
        case tooDeep
        case unreadable
    }

    private struct Scanner {
        let bytes: [UInt8]
        var i = 0

        init(bytes: [UInt8]) {
            self.bytes = bytes
        }

        /// Scans one value; returns the path of a duplicate key inside it, if any.
        mutating func value(path: String, depth: Int) throws(GaveUp) -> String? {
            guard depth < JSONBodyCheck.depthMax else { throw .tooDeep }
            skipSpace()
            guard i < bytes.count else { throw .unreadable }
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
                // A number, true, false or null: up to the next delimiter. Nothing there is a
                // trailing comma (`[1,]`), which the decoder takes and JSON does not allow.
                let start = i
                while i < bytes.count, !Self.endsScalar(bytes[i]) { i += 1 }
                if i == start { throw .unreadable }
                return nil
            }
        }

        static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

        static func endsScalar(_ b: UInt8) -> Bool {
            b == UInt8(ascii: ",") || b == UInt8(ascii: "}") || b == UInt8(ascii: "]") || isSpace(b)
        }

        /// A string at `i`, unescaped.
        mutating func string() throws(GaveUp) -> String {
            try expect(UInt8(ascii: "\""))
            let start = i
            var escaped = false
            while i < bytes.count, bytes[i] != UInt8(ascii: "\"") {
                if bytes[i] == UInt8(ascii: "\\") { escaped = true; i += 1 }
                i += 1
            }
            guard i < bytes.count else { throw .unreadable }
            let end = i
            i += 1
            if !escaped { return String(decoding: bytes[start..<end], as: UTF8.self) }
            // Let the decoder unescape it, so that keys compare as the decoder saw them.
            guard let text = try? JSONDecoder().decode(String.self, from: Data(bytes[(start - 1)...end])) else { throw .unreadable }
            return text
        }

        mutating func skipSpace() {
            while i < bytes.count, Self.isSpace(bytes[i]) { i += 1 }
        }

        func peek(_ byte: UInt8) -> Bool { i < bytes.count && bytes[i] == byte }

        mutating func expect(_ byte: UInt8) throws(GaveUp) {
            guard peek(byte) else { throw .unreadable }
            i += 1
        }
    }
}

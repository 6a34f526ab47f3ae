import CreditsCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore

/// JSON in and out, with API.md's error format for every way a body can be wrong.
enum JSONResponse {
    static func make(_ status: HTTPResponse.Status, _ value: some Encodable, replayed: Bool = false) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if replayed { headers[.idempotentReplayed] = "true" }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(_ error: CreditsError, replayed: Bool = false) -> Response {
        let status = HTTPResponse.Status(code: error.code.httpStatus)
        // Encoding a struct of strings and integers cannot fail.
        return (try? make(status, ErrorBody(error), replayed: replayed)) ?? Response(status: .internalServerError)
    }

    /// Reads at most `Limits.requestBodyBytesMax` bytes and decodes them; every failure is a
    /// `CreditsError` naming the field.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
        try decode(T.self, data: try await body(of: request))
    }

    /// `decodeClosed` of a request's body.
    static func decodeClosed<T: Decodable & ClosedFields>(_ type: T.Type, from request: Request) async throws -> T {
        try decodeClosed(T.self, data: try await body(of: request))
    }

    /// A request's body, at most `Limits.requestBodyBytesMax` bytes and not empty.
    private static func body(of request: Request) async throws -> Data {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: Limits.requestBodyBytesMax)
        } catch is NIOTooManyBytesError {
            throw CreditsError(.payloadTooLarge, "the request body is larger than \(Limits.requestBodyBytesMax) bytes")
        }
        if buffer.readableBytes == 0 { throw CreditsError.validation("body", "a JSON object is required") }
        return Data(buffer.readableBytesView)
    }

    /// Decodes an operator's request, refusing any key that is not one of `T`'s fields. A
    /// misspelt optional field (`"Category"` for `category`, `"batchid"` for `batchId`) would
    /// otherwise be dropped in silence and its default taken: a grant that expires, or every
    /// queued upload sent at once instead of one batch. Creators' requests stay open to fields
    /// this service does not read, so that clients sending more than API.md lists keep working.
    static func decodeClosed<T: Decodable & ClosedFields>(_ type: T.Type, data: Data) throws -> T {
        let value = try decode(T.self, data: data)
        if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let unknown = object.keys.sorted().first(where: { !T.fields.contains($0) }) {
            throw CreditsError.validation(
                unknown, "is not a field of this request; its fields are \(T.fields.sorted().joined(separator: ", "))")
        }
        return value
    }

    /// Decodes a body already read, then holds it to `JSONBodyCheck` (no field given twice);
    /// every failure is a `CreditsError` naming the field.
    static func decode<T: Decodable>(_ type: T.Type, data: Data) throws -> T {
        do {
            let value = try JSONDecoder().decode(T.self, from: data)
            try JSONBodyCheck.check(data)
            return value
        } catch let error as DecodingError {
            if case .dataCorrupted(let ctx) = error, ctx.codingPath.isEmpty {
                if let field = culprit(T.self, in: data) {
                    throw CreditsError.validation(field, "has a value of the wrong type or out of range")
                }
                if let number = unrepresentableNumber(in: data) {
                    throw CreditsError.validation("body", "holds a number no field can take: \(number)")
                }
            }
            throw CreditsError(decoding: error)
        }
    }

    /// Foundation's decoder reports a number it cannot hold (1.5 or 1e30 for an Int64) as "not
    /// valid JSON" with no path. When the body is valid JSON, find the number: the first whose
    /// replacement by 1 makes that error go. (Until 2026-12-05 this removed one field at a time,
    /// and named the first required field decoded before the culprit: `fileType` for an upload's
    /// `sizeBytes` of 1.5.) A number in a field that wants another type is passed over: 1 is no
    /// better there. Only numbers no Int64 holds are tried, at most `culpritCandidatesMax`, each
    /// costing a decode of the body: a body of thousands of numbers is not decoded thousands of
    /// times.
    private static func culprit<T: Decodable>(_ type: T.Type, in data: Data) -> String? {
        guard let root = try? JSONSerialization.jsonObject(with: data) else { return nil }
        var candidates: [[PathStep]] = []
        collectOddNumbers(in: root, at: [], into: &candidates)
        for path in candidates {
            guard let edited = try? JSONSerialization.data(withJSONObject: replacing(root, at: path[...], with: 1)) else { continue }
            let field = PathStep.text(path)
            do {
                _ = try JSONDecoder().decode(T.self, from: edited)
                return field
            } catch DecodingError.dataCorrupted(let ctx) where ctx.codingPath.isEmpty {
                continue
            } catch let error as DecodingError where CreditsError(decoding: error).field == field {
                continue
            } catch {
                return field
            }
        }
        return nil
    }

    static let culpritCandidatesMax = 16

    /// A number Foundation's parser cannot hold at all (1e400, past a Double), as its error names
    /// it, cut to 24 characters. Such a body is valid JSON, and was answered "is not valid JSON"
    /// until 2026-12-05. Nil for any other failure (then the body is not valid JSON).
    private static func unrepresentableNumber(in data: Data) -> String? {
        do {
            _ = try JSONSerialization.jsonObject(with: data)
            return nil
        } catch {
            let text = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? ""
            guard text.hasPrefix("Number "), let end = text.range(of: " is not representable") else { return nil }
            let number = text[text.index(text.startIndex, offsetBy: 7)..<end.lowerBound]
            return number.count > 24 ? number.prefix(24) + "…" : String(number)
        }
    }

    /// A step into a JSON value: a key of an object or an index of an array.
    private enum PathStep {
        case key(String)
        case index(Int)

        /// As `CreditsError` names fields: `sizeBytes`, `data.amount`, `items[1]`.
        static func text(_ path: [PathStep]) -> String {
            path.reduce(into: "") { out, step in
                switch step {
                case .key(let k): out += out.isEmpty ? k : ".\(k)"
                case .index(let i): out += "[\(i)]"
                }
            }
        }
    }

    /// The paths of the numbers no Int64 holds (a fraction, or too large: those Foundation reports
    /// without a path), in key order, at most `culpritCandidatesMax`.
    private static func collectOddNumbers(in value: Any, at path: [PathStep], into found: inout [[PathStep]]) {
        guard found.count < culpritCandidatesMax else { return }
        switch value {
        case let object as [String: Any]:
            for key in object.keys.sorted() { collectOddNumbers(in: object[key]!, at: path + [.key(key)], into: &found) }
        case let array as [Any]:
            for (i, element) in array.enumerated() { collectOddNumbers(in: element, at: path + [.index(i)], into: &found) }
        case is NSNumber where (value as? Int) == nil:
            found.append(path)
        default:
            break
        }
    }

    /// `value` with the value at `path` made `new`.
    private static func replacing(_ value: Any, at path: ArraySlice<PathStep>, with new: Any) -> Any {
        guard let step = path.first else { return new }
        switch (step, value) {
        case (.key(let key), let object as [String: Any]):
            var copy = object
            copy[key] = replacing(object[key] as Any, at: path.dropFirst(), with: new)
            return copy
        case (.index(let i), let array as [Any]):
            var copy = array
            copy[i] = replacing(array[i], at: path.dropFirst(), with: new)
            return copy
        default:
            return value
        }
    }
}

/// `{"error": CODE, "message": ..., "field"?: ..., "required"?: ...}`
struct ErrorBody: Encodable {
    var error: String
    var message: String
    var field: String?
    var required: Int64?
    var available: Int64?
    var suggestedPackage: String?
    var owed: Int64?

    init(_ e: CreditsError) {
        owed = e.owed
        error = e.code.rawValue
        message = e.message
        field = e.field
        required = e.required
        available = e.available
        suggestedPackage = e.suggestedPackage
    }
}

extension HTTPField.Name {
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    static let idempotentReplayed = HTTPField.Name("Idempotent-Replayed")!
}

/// The HTTP form of a ledger outcome: 201 with the receipt, or the remembered rejection; a replay
/// is marked `Idempotent-Replayed: true`.
enum LedgerResponse {
    static func make(_ result: OperationResult) throws -> Response {
        switch result.outcome {
        // A purchase waiting for the provider's confirmation is accepted, not yet done.
        case .purchased(let receipt): try JSONResponse.make(receipt.status == "pending" ? .accepted : .created, receipt, replayed: result.replayed)
        case .spent(let receipt): try JSONResponse.make(.created, receipt, replayed: result.replayed)
        case .adjusted(let receipt): try JSONResponse.make(.created, receipt, replayed: result.replayed)
        case .queued(let receipt): try JSONResponse.make(.accepted, receipt, replayed: result.replayed)
        case .settled(let receipt): try JSONResponse.make(.created, receipt, replayed: result.replayed)
        case .milestoneGranted(let receipt): try JSONResponse.make(.created, receipt, replayed: result.replayed)
        case .sponsoredUpload(let receipt): try JSONResponse.make(.created, receipt, replayed: result.replayed)
        case .paymentEvent(let receipt): try JSONResponse.make(.ok, receipt, replayed: result.replayed)
        case .expired(let receipt): try JSONResponse.make(.ok, receipt, replayed: result.replayed)
        case .rejected(let error): JSONResponse.error(error, replayed: result.replayed)
        }
    }
}

/// A request body whose keys are all known: `JSONResponse.decodeClosed` refuses any other.
protocol ClosedFields {
    static var fields: Set<String> { get }
}

extension ClosedFields {
    /// The field names of a body whose `CodingKeys` list them all.
    static func keyNames<K: CodingKey & CaseIterable>(_ keys: K.Type) -> Set<String> { Set(K.allCases.map(\.stringValue)) }
}

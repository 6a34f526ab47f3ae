extension CreditsError {
    /// A decoding failure as a validation error naming the field (`features[1]`, `credits`).
    public init(decoding error: DecodingError) {
        func path(_ keys: [any CodingKey]) -> String {
            var out = ""
            for key in keys {
                if let i = key.intValue {
                    out += "[\(i)]"
                } else {
                    out += out.isEmpty ? key.stringValue : ".\(key.stringValue)"
                }
            }
            return out.isEmpty ? "body" : out
        }
        switch error {
        case .keyNotFound(let key, let ctx):
            self = .validation(path(ctx.codingPath + [key]), "is required")
        case .valueNotFound(let type, let ctx):
            self = .validation(path(ctx.codingPath), "must be a \(Self.typeName(type)), not null")
        case .typeMismatch(let type, let ctx):
            self = .validation(path(ctx.codingPath), "must be a \(Self.typeName(type))")
        case .dataCorrupted(let ctx):
            self = ctx.codingPath.isEmpty
                ? .validation("body", "is not valid JSON")
                : .validation(path(ctx.codingPath), "has a value out of range or of the wrong type")
        @unknown default:
            self = .validation("body", "could not be decoded")
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "string"
        case is Int64.Type, is Int.Type: "whole number"
        case is [String].Type: "array of strings"
        // A body that is not an object (`[1,2]`) was told it "must be a dictionary<string, any>".
        case is [String: Any].Type: "JSON object"
        default: "\(type)".lowercased()
        }
    }
}


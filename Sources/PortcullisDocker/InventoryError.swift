/// Why an inventory could not be read: one line saying what, and where (a JSON path, a file
/// and line, or the daemon's address), with a hint when there is something to do about it.
public struct InventoryError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public let hint: String?

    public init(_ message: String, hint: String? = nil) {
        self.message = message
        self.hint = hint
    }

    public var description: String { message + (hint.map { " (hint: \($0))" } ?? "") }
}

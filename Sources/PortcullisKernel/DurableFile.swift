import Foundation

/// Writes that survive a crash or power cut whole or not at all: the text goes to a temporary
/// file in the same directory, is fsync'd, renamed over the target, and the directory is
/// fsync'd so that the rename itself is on disk. A reader sees the old file or the new one.
enum DurableFile {
    static func write(_ text: String, to path: String) throws(StateError) {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StateError.system("cannot create \(temporary)") }
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                let error = StateError.system("cannot write \(path)")
                close(fd)
                unlink(temporary)
                throw error
            }
            bytes = bytes.dropFirst(written)
        }
        guard fsync(fd) == 0 else {
            let error = StateError.system("cannot write \(path) to disk")
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        try rename(temporary, to: path)
    }

    /// Renames and makes the rename durable.
    static func rename(_ from: String, to path: String) throws(StateError) {
        guard Glibc.rename(from, path) == 0 else {
            let error = StateError.system("cannot rename \(from) to \(path)")
            unlink(from)
            throw error
        }
        try syncDirectory(of: path)
    }

    /// Removes a file or a whole directory and makes the removal durable.
    static func remove(_ path: String) throws(StateError) {
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            guard FileManager.default.fileExists(atPath: path) else { return }
            throw StateError(message: "cannot remove \(path): \(error.localizedDescription)")
        }
        try syncDirectory(of: path)
    }

    static func syncDirectory(of path: String) throws(StateError) {
        let directory = (path as NSString).deletingLastPathComponent
        let fd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0, fsync(fd) == 0 else {
            if fd >= 0 { close(fd) }
            throw StateError.system("cannot write the directory \(directory) to disk")
        }
        close(fd)
    }
}

/// A file's fingerprint kept in a generation's metadata: its size and 64-bit FNV-1a hash.
/// It finds truncated, emptied and garbled files before they are applied; it is not a defence
/// against someone who can write the state directory (they can change the kernel directly).
struct Fingerprint: Equatable {
    let size: Int
    let hash: UInt64

    init(_ text: String) {
        var text = text
        (size, hash) = text.withUTF8 { bytes in
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
            return (bytes.count, hash)
        }
    }

    init(size: Int, hash: UInt64) {
        self.size = size
        self.hash = hash
    }

    var hex: String {
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

extension StateError {
    /// A failed system call, with `strerror(errno)`.
    static func system(_ what: String) -> StateError {
        StateError(message: "\(what): \(String(cString: strerror(errno)))")
    }
}

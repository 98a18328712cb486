/// Decoding of `<episode-num>` values.
public enum EpisodeNumbers {
    /// Decodes `xmltv_ns`: `season.episode.part`, each zero-based with an optional `/total`, any part
    /// possibly empty (`.4.`), whitespace ignored. `1.4.0/1` is season 2, episode 5, part 1 of 1.
    /// Nil when malformed (not three dot-separated fields, or a non-number).
    public static func xmltvNS(_ raw: String) -> EpisodeInfo? {
        let fields = raw.filter { !$0.isWhitespace }.split(separator: ".", omittingEmptySubsequences: false)
        guard fields.count == 3 else { return nil }
        var values: [(Int?, Int?)] = []
        for field in fields {
            let halves = field.split(separator: "/", omittingEmptySubsequences: false)
            guard halves.count <= 2 else { return nil }
            var index: Int?
            if !halves[0].isEmpty {
                guard let v = Int(halves[0]), v >= 0 else { return nil }
                index = v + 1
            }
            var total: Int?
            if halves.count == 2, !halves[1].isEmpty {
                guard let v = Int(halves[1]), v > 0 else { return nil }
                total = v
            }
            values.append((index, total))
        }
        let info = EpisodeInfo(
            season: values[0].0, seasonCount: values[0].1, episode: values[1].0, episodeCount: values[1].1,
            part: values[2].0, partCount: values[2].1)
        return info.isEmpty ? nil : info
    }

    /// Decodes an on-screen number: `S02E05`, `S2 E5`, `s02e05`, `2x05`, or `E05` alone (one-based, as shown).
    /// Nil when none of these.
    public static func onscreen(_ raw: String) -> EpisodeInfo? {
        let s = Array(raw.uppercased().filter { !$0.isWhitespace })
        var i = 0
        func number() -> Int? {
            let from = i
            while i < s.count, s[i].isASCII, s[i].isNumber { i += 1 }
            return from == i ? nil : Int(String(s[from..<i]))
        }
        var season: Int?
        var episode: Int?
        if i < s.count, s[i] == "S" {
            i += 1
            guard let v = number() else { return nil }
            season = v
        } else if let v = number() {
            guard i < s.count, s[i] == "X" else { return nil }
            i += 1
            guard let e = number() else { return nil }
            return EpisodeInfo(season: v, episode: e)
        }
        if i < s.count, s[i] == "E" {
            i += 1
            guard let v = number() else { return nil }
            episode = v
        }
        // Anything after (e.g. `S01E02-E03`, ` (Part 1)`) is ignored; nothing recognised is nil.
        guard season != nil || episode != nil else { return nil }
        return EpisodeInfo(season: season, episode: episode)
    }

    /// The info of a programme: `xmltv_ns` first, then `onscreen` fills what is still missing.
    /// Also returns the numbers of a known system that could not be decoded.
    static func decode(_ numbers: [EpisodeNumber]) -> (EpisodeInfo, undecoded: [EpisodeNumber]) {
        var info = EpisodeInfo()
        var undecoded: [EpisodeNumber] = []
        for number in numbers where number.system == "xmltv_ns" {
            guard let decoded = xmltvNS(number.raw) else {
                undecoded.append(number)
                continue
            }
            if info.isEmpty { info = decoded }
        }
        for number in numbers where number.system == "onscreen" {
            guard let decoded = onscreen(number.raw) else {
                undecoded.append(number)
                continue
            }
            if info.season == nil { info.season = decoded.season }
            if info.episode == nil { info.episode = decoded.episode }
        }
        return (info, undecoded)
    }
}

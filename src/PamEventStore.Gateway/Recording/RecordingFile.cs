namespace PamEventStore.Gateway.Recording;

/// <summary>A batch read from the recording: its byte range in the file and the events as a JSON array.</summary>
public sealed record PendingBatch(long StartOffset, long EndOffset, int EventCount, byte[] Body);

/// <summary>
/// The offsets of an Infisical gateway's local recording file. The gateway appends each event as one
/// encrypted record (u32 length, 12-byte nonce, ciphertext, 16-byte tag), and uploads everything after
/// its last acknowledged offset; the offset only moves when the upload got a 2xx, so after a failure
/// the next batch starts at the same offset and carries more.
/// </summary>
public sealed class RecordingFile
{
    /// <summary>Record framing around each event's JSON: length prefix, GCM nonce and tag.</summary>
    public const int RecordOverhead = 4 + 12 + 16;

    private readonly List<byte[]> _unacknowledged = [];

    public long AcknowledgedOffset { get; private set; }

    public long WrittenOffset { get; private set; }

    public void Append(byte[] eventJson)
    {
        _unacknowledged.Add(eventJson);
        WrittenOffset += eventJson.Length + RecordOverhead;
    }

    /// <summary>Whether anything recorded is not acknowledged yet.</summary>
    public bool HasPending => _unacknowledged.Count > 0;

    /// <summary>Bytes of JSON waiting to be uploaded (what the next batch body will hold, minus brackets and commas).</summary>
    public int PendingJsonBytes => _unacknowledged.Sum(e => e.Length);

    /// <param name="maxBodyBytes">
    /// The service's body limit. The Infisical gateway sends everything unacknowledged in one body,
    /// which after an outage can outgrow the limit and then never get through (a 413 is retried as
    /// it is); this client sends the oldest events that fit, and the rest next time.
    /// </param>
    /// <returns>Events after the acknowledged offset, or null when nothing new was recorded.</returns>
    public PendingBatch? NextBatch(int maxBodyBytes = int.MaxValue)
    {
        if (_unacknowledged.Count == 0) return null;

        // json.Marshal([]json.RawMessage): the records' JSON as they are, comma-separated.
        var count = 0;
        var bodyBytes = 1;
        long endOffset = AcknowledgedOffset;
        while (count < _unacknowledged.Count && (count == 0 || bodyBytes + _unacknowledged[count].Length + 1 <= maxBodyBytes))
        {
            bodyBytes += _unacknowledged[count].Length + 1;
            endOffset += _unacknowledged[count].Length + RecordOverhead;
            count++;
        }

        var body = new byte[bodyBytes];
        var at = 0;
        body[at++] = (byte)'[';
        for (var i = 0; i < count; i++)
        {
            if (i > 0) body[at++] = (byte)',';
            _unacknowledged[i].CopyTo(body, at);
            at += _unacknowledged[i].Length;
        }

        body[at] = (byte)']';
        return new PendingBatch(AcknowledgedOffset, endOffset, count, body);
    }

    /// <summary>The service took the batch: move the offset past it.</summary>
    public void Acknowledge(PendingBatch batch)
    {
        var acknowledged = 0;
        var offset = AcknowledgedOffset;
        while (offset < batch.EndOffset && acknowledged < _unacknowledged.Count)
        {
            offset += _unacknowledged[acknowledged].Length + RecordOverhead;
            acknowledged++;
        }

        _unacknowledged.RemoveRange(0, acknowledged);
        AcknowledgedOffset = offset;
    }
}

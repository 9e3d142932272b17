namespace PamEventStore.Recording;

/// <summary>The three event shapes an Infisical gateway records, one per resource family.</summary>
public enum RecordedEventKind
{
    /// <summary><c>{timestamp, input, output}</c>: PostgreSQL, MySQL, MSSQL, Redis, MongoDB, Oracle.</summary>
    CommandLog,

    /// <summary><c>{timestamp, eventType, channelType?, data, elapsedTime}</c>: SSH and RDP.</summary>
    SessionEvent,

    /// <summary><c>{timestamp, requestId, eventType, headers, method?, url?, status?, body?}</c>: Kubernetes and cloud CLIs.</summary>
    HttpEvent,
}

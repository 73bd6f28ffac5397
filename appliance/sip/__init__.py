"""SIP: messages, transactions, dialogs, registrar, transports."""

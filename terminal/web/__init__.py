"""The browser client the device serves (GET /pingjia.js): files, no Python."""

// What ink imports for React's devtools, which it starts only with DEV=true: nothing, in hoop's bundle.
export default { initialize() {}, connectToDevTools() {} };
